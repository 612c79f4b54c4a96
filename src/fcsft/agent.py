"""The agent loop: model + tools + question -> trajectory.

The same loop makes teacher trajectories and runs the model under evaluation. It stops on a
final answer, at the step limit, at the token limit, on a call repeated with the same
arguments, or when the model fails; whichever it was is written to `meta.stop`, and every
step is kept, including failed tool results and the raw text of a reply that did not parse.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from fcsft.formats import FormatError, decode_arguments
from fcsft.formats.chat import text_messages
from fcsft.formats.openai import conversation, parse_messages, tool_json
from fcsft.formats.tagged import parse_reply
from fcsft.models.base import ChatLike, ChatRequest, ChatResponse, ModelError
from fcsft.records import Meta, Tool, Trajectory, Usage, call_id, steps_of

Mode = Literal["tagged", "native"]
STOP_AT_OBSERVATION = ["<observation"]  # a tagged model that goes on would invent the results


class ToolLike(Protocol):
    spec: Tool

    async def run(self, arguments: dict[str, Any]) -> Any: ...  # .content: str, .error: bool


@dataclass(frozen=True)
class Limits:
    max_steps: int = 15
    """Assistant turns before the loop gives up."""
    max_tokens: int = 8192
    """Completion tokens over the whole trajectory."""
    max_repeats: int = 1
    """How often a call with identical arguments may repeat before the loop stops it."""
    reply_tokens: int = 1024
    """Completion tokens per reply."""


async def run_agent(
    model: ChatLike,
    model_name: str,
    question: str,
    tools: Mapping[str, ToolLike],
    *,
    ident: str,
    system: str | None = None,
    mode: Mode = "tagged",
    limits: Limits = Limits(),
    temperature: float = 0.0,
    sample: int = 0,
    meta: Meta | None = None,
) -> Trajectory:
    """Let the model answer `question`, calling `tools` as it likes, and record everything."""
    specs = [tool.spec for tool in tools.values()]
    trajectory = Trajectory(id=ident, question=question, system=system, tools=specs)
    messages = conversation(trajectory)
    wire_tools = [tool_json(spec) for spec in specs] or None
    usage = Usage()
    seen: dict[str, int] = {}
    stop = "step_limit"
    started = time.monotonic()
    extra: dict[str, Any] = {}
    calls_made = 0
    for _ in range(limits.max_steps):
        if mode == "tagged":
            request = ChatRequest(
                model=model_name,
                messages=text_messages(messages, wire_tools),
                temperature=temperature,
                max_tokens=limits.reply_tokens,
                stop=STOP_AT_OBSERVATION,
                sample=sample,
            )
        else:
            request = ChatRequest(
                model=model_name,
                messages=messages,
                tools=wire_tools,
                temperature=temperature,
                max_tokens=limits.reply_tokens,
                sample=sample,
            )
        try:
            response = await model.chat(request)
        except ModelError as exc:
            stop, extra["error"] = "model_error", str(exc)
            break
        usage.prompt_tokens += response.prompt_tokens
        usage.completion_tokens += response.completion_tokens
        usage.cost += float(response.extra.get("cost", 0.0))
        try:
            message = _assistant(response, mode, calls_made)
        except FormatError as exc:
            stop, extra["error"] = "parse_error", str(exc)
            extra["raw"] = response.message.get("content") or ""
            break
        messages.append(message)
        calls = message.get("tool_calls") or []
        if not calls:
            stop = "final_answer" if message.get("content") is not None else "no_answer"
            break
        calls_made += len(calls)
        if _count_repeats(calls, seen) > limits.max_repeats:
            stop = "repeated_call"  # recorded as the model made it, but not run again
            break
        messages.extend(await asyncio.gather(*(_execute(call, tools) for call in calls)))
        if usage.completion_tokens >= limits.max_tokens:
            stop = "token_limit"
            break
    fields = (meta or Meta()).model_dump()
    fields.update(
        extra,
        model=model_name,
        usage=usage,
        stop=stop,
        latency_s=round(time.monotonic() - started, 3),
    )
    _, _, turn_list = parse_messages(messages)
    return Trajectory(
        id=ident,
        question=question,
        system=system,
        tools=specs,
        steps=steps_of(turn_list),
        meta=Meta(**fields),
    )


def _assistant(response: ChatResponse, mode: Mode, calls_made: int) -> dict[str, Any]:
    """The reply as an OpenAI assistant message with trajectory-wide unique call ids."""
    if mode == "tagged":
        message = parse_reply(response.message.get("content") or "", calls_made)
    else:
        message = {"role": "assistant", **response.message}
        for k, call in enumerate(message.get("tool_calls") or []):
            call.setdefault("id", call_id(calls_made + k))
            decode_arguments(call["function"].get("arguments", {}), f"tool_calls.{k}")
    return message


def _arguments(call: dict[str, Any]) -> dict[str, Any]:
    # Already checked when the reply was parsed, so this cannot fail here.
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
