"""What every model provider takes and returns: OpenAI chat-completion shapes, as plain dicts."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fcsft.errors import UserError
from fcsft.records import Usage


class _EncodedOnce:
    """Two slots for a request's JSON, outside its dataclass fields (so outside eq, repr, hash
    and asdict). Slots, not the instance's __dict__: on Python 3.11 an instance keeps its
    fields without a dict object until `__dict__` is first read, and a dict made then for
    every request sent outlives the request's own short-lived objects, which keeps the garbage
    collector's youngest generation full of live coroutines when hundreds of requests are in
    flight."""

    __slots__ = ("_messages_json", "_tools_json")

    def __getstate__(self) -> dict[str, Any]:
        """The fields alone, for pickle and copy: the text is made again where it is used (a
        frozen dataclass refuses to have its slots set back)."""
        return self.__dict__


@dataclass(frozen=True)
class ChatRequest(_EncodedOnce):
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

    def encoded(self) -> tuple[str, str]:
        """The messages and the tools (`null` for none) as canonical JSON, encoded on first use
        and kept: the cache key and the HTTP body both splice in this text, so the bulk of a
        request is serialised once, not once for each. A request is a value: change nothing
        in it once it is sent."""
        messages = getattr(self, "_messages_json", None)
        if messages is None:
            messages = _CANONICAL_JSON.encode(self.messages)
            tools = "null" if self.tools is None else _CANONICAL_JSON.encode(self.tools)
            object.__setattr__(self, "_tools_json", tools)  # frozen: as dataclass __init__ does
            object.__setattr__(self, "_messages_json", messages)
            return messages, tools
        return messages, self._tools_json

    def canonical_json(self) -> str:
        """The request as sorted-key JSON: the same text as `json.dumps(asdict(request),
        sort_keys=True, ensure_ascii=False)`, without its deep copy of the messages and with
        the messages and tools spliced in from their one encoding."""
        messages, tools = self.encoded()
        return (
            f'{{"max_tokens": {json_scalar(self.max_tokens)}, "messages": {messages}, '
            f'"model": {json_scalar(self.model)}, "sample": {json_scalar(self.sample)}, '
            f'"seed": {json_scalar(self.seed)}, "stop": {json_scalar(self.stop)}, '
            f'"temperature": {json_scalar(self.temperature)}, "tools": {tools}}}'
        )


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)  # built once, reused
_encode_text = json.encoder.encode_basestring  # what that encoder does with a str


def json_scalar(value: Any) -> str:
    """`value` as canonical JSON; ints, strings, finite floats and None without the encoder's
    set-up, which costs more than the text it writes for them."""
    kind = type(value)
    if kind is int:
        return int.__repr__(value)
    if kind is str:
        return _encode_text(value)
    if value is None:
        return "null"
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    return _CANONICAL_JSON.encode(value)


@dataclass(slots=True)  # no __dict__: one object fewer for the garbage collector a reply
class ChatResponse:
    """The assistant message (OpenAI shape: content, tool_calls, reasoning_content) and its cost."""

    message: dict[str, Any]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached: bool = False
    latency_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    body: str | None = field(default=None, repr=False, compare=False)
    """The chat-completion JSON the server sent, when one did: the response cache stores this
    text as it is rather than encoding the reply a second time."""

    @property
    def usage(self) -> Usage:
        """What this reply cost: its tokens, and the price the client put in `extra["cost"]`."""
        return Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            cost=float(self.extra.get("cost", 0.0)),
        )


def completion_reply(data: Any) -> ChatResponse:
    """A chat-completion object, parsed from JSON, as a ChatResponse; ValueError says what is
    missing or wrong."""
    try:
        choice = data["choices"][0]
        sent = choice["message"]
    except (KeyError, IndexError, TypeError):
        raise ValueError("no choices[0].message") from None
    if not isinstance(sent, dict):
        raise ValueError(f"choices[0].message is {type(sent).__name__}, not an object")
    message: dict[str, Any] = {"role": "assistant", "content": sent.get("content")}
    tool_calls = sent.get("tool_calls")
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise ValueError("choices[0].message.tool_calls is not a list")
        message["tool_calls"] = tool_calls
    # DeepSeek and vLLM call the thinking `reasoning_content`; some servers say `reasoning`.
    reasoning = sent.get("reasoning_content") or sent.get("reasoning")
    if reasoning:
        message["reasoning_content"] = reasoning
    usage = data.get("usage") or {}
    return ChatResponse(
        message=message,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=choice.get("finish_reason") or "stop",
        extra={"id": data["id"]} if data.get("id") else {},
    )


class ModelError(Exception):
    """A request that failed for good (after retries); the loop records it and moves on.

    `kind` is what failures of one cause have in common ("HTTP 500", "timeout"), for telling
    a model that fails every request the same way from one that fails now and then."""

    def __init__(self, message: str, kind: str = ""):
        super().__init__(message)
        self.kind = kind or message


class ModelUnusable(ModelError):
    """A failure every request to this model would meet: the key is refused, the model or URL
    does not exist, the server cannot be reached. The message names the fix."""


class ModelUnavailable(UserError):
    """Raised by the client instead of a request's reply: asking this model again in this run
    is pointless (see `Client`). It ends the run with one line; the next run retries what
    failed."""


class ChatLike(Protocol):
    """Anything a stage can ask: a provider, a Client, or a scripted stand-in in tests."""

    async def chat(self, request: ChatRequest) -> ChatResponse: ...


class Provider(Protocol):
    """Anything that answers chat requests."""

    name: str

    async def chat(self, request: ChatRequest) -> ChatResponse: ...

    async def close(self) -> None: ...


@runtime_checkable
class Reusing(Protocol):
    """A provider that can vouch for replies cached under another name (a local model with a
    call bias, for its unbiased replies): the client serves such a reply without asking."""

    @property
    def reuses(self) -> str | None:
        """The other cache name, or None where there is none."""

    def keeps(self, request: ChatRequest, response: ChatResponse) -> bool:
        """Whether this provider would give `response`, cached under `reuses`, again."""
