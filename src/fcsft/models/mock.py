"""`mock:FILE`: a scripted model, so that tests and demos run the whole pipeline offline.

A script is a list of replies (YAML or JSON). Each reply is one of

    - "plain text"                                   # the assistant's content
    - {content: ..., tool_calls: [...], reasoning_content: ...}   # an assistant message
    - {match: "weather", content: "Sunny."}          # used only when the last user
                                                     # message contains "weather"
    - {error: "rate limited"}                        # the request fails with a ModelError

Replies are consumed in order: each request takes the first unused reply whose `match` (if
any) is in the last user message. Tool calls may be written short,
`{name: add, arguments: {a: 1}}`, and are expanded to the OpenAI shape (id, type, arguments
as a JSON string) so that what a mock returns is what a real server would.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fcsft.errors import UserError
from fcsft.models.base import ChatRequest, ChatResponse, ModelError
from fcsft.models.registry import register

_MESSAGE_KEYS = {"role", "content", "tool_calls", "reasoning_content"}
_CONTROL_KEYS = {"match", "error"}


@register("mock")
def mock_provider(rest: str, **_transport_options: Any) -> MockProvider:
    """The script in file `rest`. Options meant for a network model (keys, timeouts) are ignored,
    so that a config can swap a real model for a mock by changing the URI alone."""
    return MockProvider.from_file(rest)


@dataclass
class ScriptedReply:
    message: dict[str, Any]
    match: str | None = None
    error: str | None = None


class MockProvider:
    """Answers from a script, and keeps every request it was sent for tests to look at."""

    def __init__(self, replies: Iterable[str | dict[str, Any]], *, name: str = "mock"):
        self.name = name
        self.script = [scripted_reply(reply, i) for i, reply in enumerate(replies)]
        self.requests: list[ChatRequest] = []

    @classmethod
    def from_file(cls, path: str | Path) -> MockProvider:
        """A provider from a YAML or JSON list of replies; a bad file is a UserError."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"mock:{path}: cannot read the script ({exc.strerror})") from exc
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise UserError(f"mock:{path}: not valid {path.suffix[1:] or 'YAML'}: {exc}") from exc
        if not isinstance(data, list):
            raise UserError(f"mock:{path}: expected a list of replies, got {type(data).__name__}")
        try:
            return cls(data, name=f"mock:{path.name}")
        except ValueError as exc:
            raise UserError(f"mock:{path}: {exc}") from exc

    @property
    def remaining(self) -> int:
        return len(self.script)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        asked = last_user_text(request.messages)
        for index, reply in enumerate(self.script):
            if reply.match is None or reply.match in asked:
                del self.script[index]
                break
        else:
            raise ModelError(
                f"{self.name}: no scripted reply left for {asked[:80]!r} "
                f"({len(self.requests)} requests so far)"
            )
        if reply.error is not None:
            raise ModelError(f"{self.name}: {reply.error}")
        message = json.loads(json.dumps(reply.message))  # callers may change what they get
        return ChatResponse(
            message=message,
            prompt_tokens=sum(_words(m.get("content")) for m in request.messages),
            completion_tokens=_words(message.get("content"))
            + sum(_words(c["function"]["arguments"]) for c in message.get("tool_calls", [])),
            finish_reason="tool_calls" if message.get("tool_calls") else "stop",
        )

    async def close(self) -> None:
        pass


def scripted_reply(reply: str | dict[str, Any], index: int) -> ScriptedReply:
    """Script entry `index`, checked: a ValueError names the entry and the problem."""
    where = f"reply {index}"
    if isinstance(reply, str):
        return ScriptedReply({"role": "assistant", "content": reply})
    if not isinstance(reply, dict):
        raise ValueError(f"{where}: expected text or a mapping, got {type(reply).__name__}")
    unknown = set(reply) - _MESSAGE_KEYS - _CONTROL_KEYS
    if unknown:
        known = ", ".join(sorted(_MESSAGE_KEYS | _CONTROL_KEYS))
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {known}")
    message: dict[str, Any] = {"role": "assistant", "content": reply.get("content")}
    if reply.get("reasoning_content") is not None:
        message["reasoning_content"] = reply["reasoning_content"]
    calls = reply.get("tool_calls") or []
    if not isinstance(calls, list):
        raise ValueError(f"{where}: tool_calls must be a list")
    if calls:
        message["tool_calls"] = [
            _openai_call(call, f"{where}.tool_calls[{i}]", f"call_{index}_{i}")
            for i, call in enumerate(calls)
        ]
    match, error = reply.get("match"), reply.get("error")
    return ScriptedReply(
        message,
        match=None if match is None else str(match),
        error=None if error is None else str(error),
    )


def _openai_call(call: Any, where: str, default_id: str) -> dict[str, Any]:
    """A tool call in the shape servers send, from either that shape or `{name, arguments}`."""
    if not isinstance(call, dict):
        raise ValueError(f"{where}: expected a mapping")
    function = call.get("function", call)
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: a tool call needs a name")
    arguments = function.get("arguments", {})
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {
        "id": str(call.get("id") or default_id),
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def last_user_text(messages: list[dict[str, Any]]) -> str:
    """The text of the last user message (content parts joined), or "" if there is none."""
    for message in reversed(messages):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(
                    str(part.get("text", "")) for part in content if isinstance(part, dict)
                )
            return str(content or "")
    return ""


def _words(text: Any) -> int:
    """A stand-in token count: deterministic and roughly proportional, which is all tests need."""
    return len(text.split()) if isinstance(text, str) else 0
