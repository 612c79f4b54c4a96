"""The teacher's text format.

    <think>…</think><tool_call>{"name": …, "arguments": {…}}</tool_call>
    <observation>…</observation> … <final_answer>…</final_answer>
    <user>…</user> <think>…</think> … <final_answer>…</final_answer>

`question` is the first user message; each follow-up is a `<user>` block after the reply to
the one before (a model's own reply may not contain one).

Text shown to the user beside calls is written untagged right before the turn's first
`<tool_call>` (after its `<think>`), as chat templates write content before their calls;
untagged text anywhere else is an error. A file of it holds one JSON object a line:
`{"question", "tools", "text", "meta", "system"?, "weights"?}`. A failed tool result is
written `<observation error="true">`. A call carries an `"id"` only when it differs from the
one its position implies (`call_N`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fcsft.formats.base import (
    Format,
    FormatError,
    build,
    decode_arguments,
    kind,
    meta_json,
    register,
    split_meta,
)
from fcsft.formats.json_text import JsonProblem, loads_lenient
from fcsft.formats.openai import assistant_message
from fcsft.records import (
    FinalAnswer,
    GrammarError,
    Observation,
    Say,
    Think,
    Tool,
    ToolCall,
    Trajectory,
    User,
    call_id,
    turns,
)

CALL_OPEN, ANSWER_OPEN = "<tool_call>", "<final_answer>"  # how a reply calls, or answers
OBSERVATION_STOP = "<observation"
"""Where a tagged request stops: a model that writes it goes on to invent a tool result."""
REPLY_STOPS = (OBSERVATION_STOP, "</final_answer>")
"""Where a tagged reply is over when its closing tags are kept: at an invented result, or after
the final answer (text after it would not parse). A request to a server carries only
OBSERVATION_STOP: a server cuts the stop string off the reply, and a final answer without its
closing tag would not parse."""

_OPEN = re.compile(r"<(think|tool_call|observation|final_answer|user)(\s+error=\"true\")?>")
_ANY_OPEN = re.compile(r"<(?:think|tool_call|observation|final_answer|user)(?:\s[^>]*)?>")
_ANY_TAG = re.compile(r"</?(?:think|tool_call|observation|final_answer|user)\b")
_CALL_KEYS = {"name", "arguments", "id"}


# ---------------------------------------------------------------- rendering


def render_text(steps: list[Any]) -> str:
    """The tagged text of a list of steps."""
    parts: list[str] = []
    for index, step in enumerate(steps):
        if isinstance(step, Think):
            parts.append(f"<think>{_plain(step.text, index)}</think>")
        elif isinstance(step, Say):
            parts.append(_plain(step.text, index))
        elif isinstance(step, ToolCall):
            parts.append(f"{CALL_OPEN}{call_json(step, index_of_call(steps, index))}</tool_call>")
        elif isinstance(step, Observation):
            if "</observation>" in step.content:
                raise FormatError(
                    "contains '</observation>', which the tagged format cannot carry",
                    f"steps.{index}.content",
                )
            attr = ' error="true"' if step.error else ""
            parts.append(f"<observation{attr}>{step.content}</observation>")
        elif isinstance(step, FinalAnswer):
            parts.append(f"{ANSWER_OPEN}{_plain(step.text, index)}</final_answer>")
        elif isinstance(step, User):
            parts.append(f"<user>{_plain(step.text, index)}</user>")
    return "\n".join(parts)


def index_of_call(steps: list[Any], index: int) -> int:
    return sum(1 for step in steps[:index] if isinstance(step, ToolCall))


def call_object(call: ToolCall, position: int) -> dict[str, Any]:
    """A call as `{"name", "arguments"}`, plus `"id"` when its position does not imply it."""
    obj: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
    if call.id != call_id(position):
        obj["id"] = call.id
    return obj


def call_json(call: ToolCall, position: int) -> str:
    """One call as JSON; `</` is escaped as `<\\/` so no argument can close the tag early."""
    return json.dumps(call_object(call, position), ensure_ascii=False).replace("</", "<\\/")


def holds_markup(text: str) -> bool:
    """Whether `text` holds one of the format's tags, which a plain text step cannot carry."""
    return _ANY_TAG.search(text) is not None


def _plain(text: str, index: int) -> str:
    found = _ANY_TAG.search(text)
    if found:
        raise FormatError(
            f"contains {found.group(0)!r}, which the tagged format cannot carry",
            f"steps.{index}.text",
        )
    return text


def render(trajectory: Trajectory) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    if trajectory.system is not None:
        obj["system"] = trajectory.system
    obj["question"] = trajectory.question
    obj["tools"] = [tool.to_json() for tool in trajectory.tools]
    obj["text"] = render_text(trajectory.steps)
    if trajectory.weights:
        obj["weights"] = trajectory.weights
    obj["meta"] = meta_json(trajectory)
    return obj


# ------------------------------------------------------------------ parsing


def parse_text(text: str, first_call: int = 0) -> list[Any]:
    """Steps from tagged text, or a FormatError with the offset of the first problem."""
    steps: list[Any] = []
    offsets: list[int] = []
    pending: list[str] = []  # ids of calls still waiting for an observation
    calls_seen = first_call
    pos = _skip_space(text, 0)
    while pos < len(text):
        opening = _OPEN.match(text, pos)
        said = None if opening else _say_before_call(text, pos)
        if said is not None:
            steps.append(Say(text=text[pos:said]))
            offsets.append(pos)
            pending.clear()
            pos = said
            continue
        if opening is None:
            ended = bool(steps) and isinstance(steps[-1], FinalAnswer)
            what = "text after </final_answer>" if ended else "text outside any tag"
            raise FormatError(f"{what}: {text[pos : pos + 30]!r}", "text", pos)
        tag = opening.group(1)
        closing = text.find(f"</{tag}>", opening.end())
        if closing < 0:
            raise FormatError(f"<{tag}> is never closed", "text", pos)
        body = text[opening.end() : closing]
        body_at = opening.end()
        if tag in ("think", "final_answer", "user"):
            nested = _ANY_OPEN.search(body)
            if nested:
                raise FormatError(
                    f"<{tag}> opened at offset {pos} contains {nested.group(0)}: close it first",
                    "text",
                    body_at + nested.start(),
                )
        if tag == "think":
            steps.append(Think(text=body))
        elif tag == "final_answer":
            steps.append(FinalAnswer(text=body))
        elif tag == "user":
            if not body.strip():
                raise FormatError("an empty <user> message", "text", pos)
            steps.append(User(text=body))
        elif tag == "tool_call":
            call = parse_call(body, calls_seen, body_at)
            calls_seen += 1
            steps.append(call)
            pending.append(call.id)
        else:
            if not pending:
                raise FormatError("<observation> with no tool call left to answer", "text", pos)
            error = opening.group(2) is not None
            steps.append(Observation(content=body, call_id=pending.pop(0), error=error))
        if tag != "observation" and tag != "tool_call":
            pending.clear()  # a new turn: unanswered calls are reported by the grammar below
        offsets.append(pos)
        pos = _skip_space(text, closing + len(tag) + 3)
    try:
        turns(steps)
    except GrammarError as exc:
        raise FormatError(str(exc), "text", offsets[min(exc.index, len(offsets) - 1)]) from None
    return steps


def _say_before_call(text: str, pos: int) -> int | None:
    """Where the `<tool_call>` that ends untagged text starting at `pos` opens, if one does."""
    following = _ANY_OPEN.search(text, pos)
    if following is None or not following.group(0).startswith("<tool_call"):
        return None
    if not text[pos : following.start()].strip() or _ANY_TAG.search(text, pos, following.start()):
        return None
    return following.start()


def parse_call(body: str, position: int, shift: int = 0) -> ToolCall:
    """One `<tool_call>` body. `position` is the call's index, which gives its default id."""
    try:
        obj = loads_lenient(body)
    except JsonProblem as exc:
        raise FormatError(f"bad JSON in <tool_call>: {exc}", "text", shift + exc.offset) from None
    return call_from_object(obj, position, "text", shift)


def call_from_object(obj: Any, position: int, where: str, offset: int | None = None) -> ToolCall:
    """A call from its parsed JSON: strict about the name, the arguments and unknown keys."""
    if not isinstance(obj, dict):
        raise FormatError(f"a tool call must be a JSON object, got {kind(obj)}", where, offset)
    unknown = sorted(set(obj) - _CALL_KEYS)
    if unknown:
        raise FormatError(
            f"tool call has unexpected keys {unknown}; allowed: name, arguments, id", where, offset
        )
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        raise FormatError(
            f"tool call name must be a non-empty string, got {kind(name)}", where, offset
        )
    arguments = decode_arguments(obj.get("arguments", {}), where, offset)
    ident = obj.get("id", call_id(position))
    if not isinstance(ident, str):
        raise FormatError(f"tool call id must be a string, got {kind(ident)}", where, offset)
    return ToolCall(name=name, arguments=arguments, id=ident)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def parse(obj: dict[str, Any]) -> Trajectory:
    record_id, meta = split_meta(obj)
    for key in ("question", "text"):
        if not isinstance(obj.get(key), str):
            raise FormatError("missing or not a string", key)
    tools = obj.get("tools", [])
    if not isinstance(tools, list):
        raise FormatError("must be a list of tool objects", "tools")
    steps = parse_text(obj["text"])
    return build(
        id=record_id,
        question=obj["question"],
        system=obj.get("system"),
        tools=[_tool(tool, index) for index, tool in enumerate(tools)],
        steps=steps,
        weights=obj.get("weights", []),
        meta=meta,
    )


def _tool(obj: Any, index: int) -> Tool:
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise FormatError("must be an object with a string name", f"tools.{index}")
    try:
        return Tool.from_json(obj)
    except ValueError as exc:
        raise FormatError(str(exc).splitlines()[0], f"tools.{index}") from None


def parse_reply(text: str, first_call: int = 0) -> dict[str, Any]:
    """One model reply as an OpenAI assistant message.

    A reply with no fcsft tag at all is a plain answer (the model did not call); a reply that
    uses the tags wrongly raises FormatError, so evaluation can count it as a parse failure.
    """
    if not _ANY_TAG.search(text):
        return {"role": "assistant", "content": text.strip()}
    steps = parse_text(text, first_call)
    for step_type, tag, source in (
        (Observation, "observation", "tools"),
        (User, "user", "the user"),
    ):
        if any(isinstance(step, step_type) for step in steps):
            raise FormatError(
                f"a reply may not contain <{tag}>: those come from {source}",
                "text",
                text.find(f"<{tag}"),
            )
    found = turns(steps)
    if len(found) != 1:
        raise FormatError("a reply must be one turn: thinking, then calls or an answer", "text")
    return assistant_message(found[0])


register(Format("tagged", render, parse))
