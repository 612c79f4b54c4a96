"""What every model provider takes and returns: OpenAI chat-completion shapes, as plain dicts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request.

    `messages` and `tools` use the OpenAI chat format (`tools` is the list of
    `{"type": "function", "function": {...}}` objects, or None for no native tools).
    """

    model: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    temperature: float = 0.0
    max_tokens: int = 1024
    stop: list[str] | None = None
    seed: int | None = None
    sample: int = 0  # distinguishes repeated samples of one request in the cache

    def key(self) -> str:
        """The hash that names this request in the response cache."""
        blob = json.dumps(asdict(self), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class ChatResponse:
    """The assistant message (OpenAI shape: content, tool_calls, reasoning_content) and its cost."""

    message: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached: bool = False
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class ModelError(Exception):
    """A request that failed for good (after retries); the loop records it and moves on."""


class Provider(Protocol):
    """Anything that answers chat requests."""

    name: str

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def close(self) -> None: ...
