"""The agent loop: a model asked turn after turn in one protocol, everything it did recorded.

The same loop generates teacher trajectories and runs the model under evaluation, in one of
two modes:

- **live** (`live`, and `run_agent` for a Trajectory): the model runs against the tools
  itself. The calls of each reply are run and their results appended to the conversation for
  the next request. It stops on a final answer (`final_answer`, or `no_answer` for a reply with
  neither calls nor text), at the step limit (`step_limit`), at the token limit
  (`token_limit`), on a call repeated with the same arguments (`repeated_call`, recorded but
  not run again), or when the model fails (`model_error`, `parse_error`).
  A conversation of several user turns runs live once per user message, each on the
  conversation so far (`run_agent`'s `followups`).
- **replay** (`replay`): the model is asked once per gold turn, each time with the gold
  history up to that turn (the reference calls and their real results), so a multi-step task
  is scored step by step without running tools, and one early slip does not hide every later
  step. It stops at the first turn where the model calls nothing (`no_call`) or fails, or
  after the last gold turn (`gold_end`).

Either way each reply is read into an OpenAI assistant message whose calls carry ids unique
in the conversation (numbered on from the calls already in it, so a live run may go on from a
conversation that has some); a reply that cannot be read is kept as its raw text with the reason, and a
request that fails is kept as the error. The usage of every reply is added up here, once.

A protocol is how a request is put and its reply read, registered by name: `native` (OpenAI
function calling: the provider renders the tools), `tagged` (fcsft's tagged text rendered
into the prompt here, the reply parsed by `fcsft.formats.tagged`), and those other layers
register (evaluation adds BFCL's prompting forms).
"""

from __future__ import annotations

import asyncio
import json
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fcsft.errors import UserError
from fcsft.formats import FormatError, decode_arguments
from fcsft.formats.chat import text_messages
from fcsft.formats.openai import conversation, parse_messages, tool_json
from fcsft.formats.tagged import OBSERVATION_STOP, parse_reply
from fcsft.models.base import ChatLike, ChatRequest, ChatResponse, ModelError
from fcsft.records import Meta, Tool, Trajectory, Usage, call_id, steps_of


class ToolLike(typing.Protocol):
    spec: Tool

    async def run(self, arguments: dict[str, Any]) -> Any: ...  # .content: str, .error: bool


MAX_STEPS = 15
"""Assistant steps (turns) per trajectory unless a config says otherwise: what the teacher is
allowed and, with it, what validation accepts."""


@dataclass(frozen=True)
class Limits:
    max_steps: int = MAX_STEPS
    """Assistant turns before the loop gives up."""
    max_tokens: int = 8192
    """Completion tokens over the whole trajectory."""
    max_repeats: int = 1
    """How often a call with identical arguments may repeat before the loop stops it."""
    reply_tokens: int = 1024
    """Completion tokens per reply."""


@dataclass(frozen=True)
class Settings:
    """What every request of one run carries besides its messages and tools."""

    model_name: str
    max_tokens: int
    """Completion tokens per reply."""
    temperature: float = 0.0
    sample: int = 0
    """Which of several samples of the same request this is (kept apart in the cache)."""


class Protocol:
    """How the loop puts OpenAI-shaped messages and tools to a model and reads the reply."""

    def request(
        self, settings: Settings, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> ChatRequest:
        raise NotImplementedError

    def read(
        self, response: ChatResponse, tools: list[dict[str, Any]], calls_made: int
    ) -> dict[str, Any]:
        """The reply as an assistant message, its calls numbered on from `calls_made`; a
        FormatError (KeyError, TypeError for a malformed message) when it cannot be read."""
        raise NotImplementedError


ProtocolFactory = Callable[[list[dict[str, Any]] | None], Protocol]
"""Makes a protocol for one task; its argument is the task's own descriptions of its functions
(a BFCL item's), for a protocol that shows them, else None."""
_PROTOCOLS: dict[str, ProtocolFactory] = {}


def register_protocol(name: str) -> Callable[[ProtocolFactory], ProtocolFactory]:
    def decorate(factory: ProtocolFactory) -> ProtocolFactory:
        _PROTOCOLS[name] = factory
        return factory

    return decorate


def protocol_named(name: str, functions: list[dict[str, Any]] | None = None) -> Protocol:
    """The protocol registered as `name`, for a task with these function descriptions."""
    factory = _PROTOCOLS.get(name)
    if factory is None:
        known = ", ".join(sorted(_PROTOCOLS))
        raise UserError(f"unknown protocol {name!r}; known: {known}")
    return factory(functions)


class Native(Protocol):
    """OpenAI function calling: `tools` go to the provider, calls come back as `tool_calls`."""

    def request(self, settings, messages, tools):
        return ChatRequest(
            model=settings.model_name,
            messages=list(messages),
            tools=tools or None,
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            sample=settings.sample,
        )

    def read(self, response, tools, calls_made):
        message = {"role": "assistant", **response.message}
        for k, call in enumerate(message.get("tool_calls") or []):
            call.setdefault("id", call_id(calls_made + k))
            if not isinstance(call["function"].get("name"), str):
                raise FormatError("a call needs a name", f"tool_calls.{k}.function")
            decode_arguments(call["function"].get("arguments", {}), f"tool_calls.{k}")
        return message


class Tagged(Protocol):
    """fcsft's tagged text: tools in the system prompt, turns as tags, the reply parsed."""

    def request(self, settings, messages, tools):
        return ChatRequest(
            model=settings.model_name,
            messages=text_messages(messages, tools or None),
            temperature=settings.temperature,
            max_tokens=settings.max_tokens,
            stop=[OBSERVATION_STOP],
            sample=settings.sample,
        )

    def read(self, response, tools, calls_made):
        return parse_reply(response.message.get("content") or "", calls_made)


register_protocol("native")(lambda functions: Native())
register_protocol("tagged")(lambda functions: Tagged())


def reply_text(response: ChatResponse) -> str:
    """The reply as the model wrote it (a provider that parsed it keeps the text in `raw`)."""
    return str(response.extra.get("raw", response.message.get("content") or ""))


@dataclass
class Reply:
    """One answered request: the assistant message read from it, or why it could not be."""

    raw: str
    message: dict[str, Any] | None = None
    error: str | None = None

    def calls(self) -> list[dict[str, Any]]:
        """`{"name", "arguments"}` of each call, arguments decoded."""
        return [
            {"name": call["function"]["name"], "arguments": _arguments(call)}
            for call in (self.message or {}).get("tool_calls") or []
        ]


@dataclass
class Run:
    """What one pass of the loop did."""

    messages: list[dict[str, Any]]
    """Live: the conversation as it went, opening included; replay: the last prompt asked."""
    replies: list[Reply] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    stop: str = ""
    error: str | None = None
    """The model's failure or why the last reply could not be read."""
    latency_s: float = 0.0


class _Live:
    """The next prompt is the conversation so far, the model's own calls run on the tools."""

    exhausted = "step_limit"

    def __init__(
        self, messages: list[dict[str, Any]], tools: Mapping[str, ToolLike], limits: Limits
    ):
        self.messages = messages
        self.tools = tools
        self.limits = limits
        self.asked = 0
        self.seen: dict[str, int] = {}

    def prompt(self) -> list[dict[str, Any]] | None:
        if self.asked >= self.limits.max_steps:
            return None
        self.asked += 1
        return self.messages

    async def advance(self, message: dict[str, Any], usage: Usage) -> str | None:
        self.messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            return "final_answer" if message.get("content") is not None else "no_answer"
        if _count_repeats(calls, self.seen) > self.limits.max_repeats:
            return "repeated_call"
        self.messages.extend(await asyncio.gather(*(_execute(c, self.tools) for c in calls)))
        if usage.completion_tokens >= self.limits.max_tokens:
            return "token_limit"
        return None


class _Replay:
    """The next prompt is the gold history up to the next gold turn, whatever the model said."""

    exhausted = "gold_end"

    def __init__(self, prompts: Sequence[list[dict[str, Any]]]):
        self.prompts = prompts
        self.index = 0
        self.messages: list[dict[str, Any]] = list(prompts[0]) if prompts else []

    def prompt(self) -> list[dict[str, Any]] | None:
        if self.index >= len(self.prompts):
            return None
        self.messages = self.prompts[self.index]
        self.index += 1
        return self.messages

    async def advance(self, message: dict[str, Any], usage: Usage) -> str | None:
        return None if message.get("tool_calls") else "no_call"


async def _loop(
    model: ChatLike,
    protocol: Protocol,
    settings: Settings,
    tools: list[dict[str, Any]],
    course: _Live | _Replay,
) -> Run:
    run = Run(messages=course.messages)
    started = time.monotonic()
    while (messages := course.prompt()) is not None:
        try:
            response = await model.chat(protocol.request(settings, messages, tools))
        except ModelError as exc:
            run.stop, run.error = "model_error", str(exc)
            break
        run.usage.add(response.usage)
        reply = _read(protocol, response, tools, _calls_in(messages))
        run.replies.append(reply)
        if reply.message is None:
            run.stop, run.error = "parse_error", reply.error
            break
        stop = await course.advance(reply.message, run.usage)
        if stop:
            run.stop = stop
            break
    else:
        run.stop = course.exhausted
    run.messages = course.messages
    run.latency_s = round(time.monotonic() - started, 3)
    return run


def _calls_in(messages: list[dict[str, Any]]) -> int:
    """Calls made before this request, the opening's included: the reply's are numbered on."""
    return sum(len(m.get("tool_calls") or []) for m in messages if m.get("role") == "assistant")


def _read(
    protocol: Protocol, response: ChatResponse, tools: list[dict[str, Any]], calls_made: int
) -> Reply:
    raw = reply_text(response)
    if response.extra.get("parse_error"):  # the provider read the reply and could not
        return Reply(raw, error=str(response.extra["parse_error"]))
    try:
        return Reply(raw, message=protocol.read(response, tools, calls_made))
    except (FormatError, KeyError, TypeError) as exc:
        return Reply(raw, error=str(exc))


async def live(
    model: ChatLike,
    protocol: Protocol,
    settings: Settings,
    messages: list[dict[str, Any]],
    tools: Mapping[str, ToolLike],
    limits: Limits = Limits(),
    shown: Sequence[str] | None = None,
) -> Run:
    """Let the model go on from `messages`, calling `tools` as it likes (see the module);
    `shown` names the tools its requests offer when not all of them (a BFCL environment runs
    any of its methods, shown or not)."""
    names = list(tools) if shown is None else [name for name in shown if name in tools]
    offered = [tool_json(tools[name].spec) for name in names]
    return await _loop(model, protocol, settings, offered, _Live(list(messages), tools, limits))


async def replay(
    model: ChatLike,
    protocol: Protocol,
    settings: Settings,
    prompts: Sequence[list[dict[str, Any]]],
    tools: list[dict[str, Any]],
) -> Run:
    """Ask the model each prompt in turn (see the module); `gold_prompts` makes them."""
    return await _loop(model, protocol, settings, tools, _Replay(prompts))


def gold_prompts(conversation: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The gold history before each gold turn that calls tools; none when no turn does."""
    return [
        conversation[:index]
        for index, message in enumerate(conversation)
        if message["role"] == "assistant" and message.get("tool_calls")
    ]


async def run_agent(
    model: ChatLike,
    model_name: str,
    question: str,
    tools: Mapping[str, ToolLike],
    *,
    ident: str,
    followups: Sequence[str] = (),
    system: str | None = None,
    protocol: str = "tagged",
    limits: Limits = Limits(),
    temperature: float = 0.0,
    sample: int = 0,
    meta: Meta | None = None,
) -> Trajectory:
    """Let the model answer `question` live, calling `tools` as it likes, then each of
    `followups` in turn on the conversation so far, and record everything as a Trajectory:
    every step, the stop reason in `meta.stop`, the failure in `meta.error` and the text of a
    reply that did not parse in `meta.raw`. `limits.max_steps` bounds the replies to each user
    message, `limits.max_tokens` the whole conversation; a user turn that ends without an
    answer ends the conversation there, its later follow-ups not asked."""
    specs = [tool.spec for tool in tools.values()]
    messages = conversation(Trajectory(id=ident, question=question, system=system, tools=specs))
    settings = Settings(model_name, limits.reply_tokens, temperature, sample)
    chosen = protocol_named(protocol)
    usage, latency = Usage(), 0.0
    for text in [None, *followups]:
        if text is not None:
            messages = [*messages, {"role": "user", "content": text}]
        left = limits.max_tokens - usage.completion_tokens
        run = await live(model, chosen, settings, messages, tools, replace(limits, max_tokens=left))
        messages = run.messages
        usage.add(run.usage)
        latency += run.latency_s
        if run.stop != "final_answer":
            break
    fields = (meta or Meta()).model_dump()
    if run.error is not None:
        fields["error"] = run.error
    if run.stop == "parse_error":
        fields["raw"] = run.replies[-1].raw
    latency_s = round(latency, 3)
    fields.update(model=model_name, usage=usage, stop=run.stop, latency_s=latency_s)
    _, _, turn_list = parse_messages(messages)
    return Trajectory(
        id=ident,
        question=question,
        system=system,
        tools=specs,
        steps=steps_of(turn_list),
        meta=Meta(**fields),
    )


def _arguments(call: dict[str, Any]) -> dict[str, Any]:
    # Already checked when the reply was read, so this cannot fail here.
    return decode_arguments(call["function"].get("arguments", {}), "tool_calls")


def _count_repeats(calls: list[dict[str, Any]], seen: dict[str, int]) -> int:
    """The highest number of times any of these calls was made before, counting them in."""
    worst = 0
    for call in calls:
        key = json.dumps([call["function"]["name"], _arguments(call)], sort_keys=True)
        seen[key] = seen.get(key, 0) + 1
        worst = max(worst, seen[key] - 1)
    return worst


async def _execute(call: dict[str, Any], tools: Mapping[str, ToolLike]) -> dict[str, Any]:
    name = call["function"]["name"]
    message = {"role": "tool", "tool_call_id": call["id"], "name": name}
    tool = tools.get(name)
    if tool is None:
        known = ", ".join(sorted(tools)) or "none"
        return message | {"content": f"unknown tool {name!r}; available: {known}", "is_error": True}
    result = await tool.run(_arguments(call))
    return message | {"content": result.content, "is_error": result.error}
