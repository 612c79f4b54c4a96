"""What every model provider takes and returns: OpenAI chat-completion shapes, as plain dicts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
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

    def canonical_json(self) -> str:
        """The request as sorted-key JSON. Built from the instance's own fields: the deep copy
        `dataclasses.asdict` makes of the messages cost 15% of a request's CPU at concurrency
        256."""
        return _CANONICAL_JSON.encode(vars(self))

    def key(self) -> str:
        """The hash that names this request in the response cache."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)  # built once, reused


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


class ChatLike(Protocol):
    """Anything a stage can ask: a provider, a Client, or a scripted stand-in in tests."""

    async def chat(self, request: ChatRequest) -> ChatResponse: ...


class Provider(Protocol):
    """Anything that answers chat requests."""

    name: str

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def close(self) -> None: ...
