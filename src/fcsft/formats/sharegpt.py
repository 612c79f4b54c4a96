"""LLaMA-Factory's ShareGPT layout for tool use.

    {"conversations": [{"from": "human", ...}, {"from": "function_call", ...},
                       {"from": "observation", ...}, {"from": "gpt", ...}],
     "tools": "<JSON string>", "system": "...", "meta": {...}}

The first `human` turn is the question; a later one is a follow-up, after the reply to the one
before. Thinking before a call or an answer is kept as a `<think>…</think>` prefix of the turn's value,
which LLaMA-Factory (0.9.2 and later in a `function_call` turn) strips and re-renders with the
template's thought words. Parallel calls are a JSON list in one `function_call` turn; their
results are one `observation` turn whose value joins them with `RESULT_SEPARATOR`, as
LLaMA-Factory's own OpenAI-messages converter does, so templates that wrap an observation in
`<tool_response>…</tool_response>` show one block per result. A result that contains the
separator cannot be written that way and is refused.

What LLaMA-Factory has no field for rides in extra keys it ignores: `content` on a
`function_call` turn (text shown beside the calls), `weight` (0 or 1) on each `gpt` and
`function_call` turn when the trajectory has weights, an `errors` list (indices of failed
results) on an observation, and `"incomplete": true` on a final turn that holds only thinking
(a run cut off before answering).
"""

from __future__ import annotations

import json
import re
from typing import Any

from fcsft.formats.base import Format, FormatError, build, meta_json, register, split_meta
from fcsft.formats.json_text import JsonProblem, loads_lenient
from fcsft.formats.openai import follow_up, parse_tool
from fcsft.formats.tagged import call_from_object, call_object
from fcsft.records import Observation, Trajectory, Turn, append_turn, steps_of, turns

_THINK = re.compile(r"\s*<think>(.*?)</think>\s*", re.DOTALL)
RESULT_SEPARATOR = "\n</tool_response>\n<tool_response>\n"


def _with_thought(think: str | None, body: str, where: str) -> str:
    if think is None:
        return body
    if "</think>" in think:
        raise FormatError("thinking contains '</think>'", where)
    return f"<think>\n{think}\n</think>\n\n{body}"


def render(trajectory: Trajectory) -> dict[str, Any]:
    conversations: list[dict[str, Any]] = [{"from": "human", "value": trajectory.question}]
    position = 0
    for number, turn in enumerate(turns(trajectory.steps)):
        where = f"turns.{number}"
        if turn.user is not None:
            conversations.append({"from": "human", "value": turn.user})
        if turn.calls:
            parts = [call_object(call, position + k) for k, call in enumerate(turn.calls)]
            position += len(turn.calls)
            payload = parts[0] if len(parts) == 1 else parts
            body = json.dumps(payload, ensure_ascii=False)
            call: dict[str, Any] = {
                "from": "function_call",
                "value": _with_thought(turn.think, body, where),
            }
            if turn.say is not None:
                call["content"] = turn.say
            conversations.append(_weighed(call, trajectory, number))
            if turn.observations:
                conversations.append(_observation_turn(turn, where))
        else:
            if turn.final is not None and turn.final.lstrip().startswith("<think>"):
                raise FormatError("a final answer may not start with <think>", where)
            gpt: dict[str, Any] = {
                "from": "gpt",
                "value": _with_thought(turn.think, turn.final or "", where),
            }
            if turn.final is None:
                gpt["incomplete"] = True
            conversations.append(_weighed(gpt, trajectory, number))
    obj: dict[str, Any] = {"conversations": conversations}
    if trajectory.system is not None:
        obj["system"] = trajectory.system
    obj["tools"] = json.dumps([tool.to_json() for tool in trajectory.tools], ensure_ascii=False)
    obj["meta"] = meta_json(trajectory)
    return obj


def _weighed(item: dict[str, Any], trajectory: Trajectory, number: int) -> dict[str, Any]:
    if trajectory.weights:
        item["weight"] = trajectory.weights[number]
    return item


def _observation_turn(turn: Turn, where: str) -> dict[str, Any]:
    contents = [obs.content for obs in turn.observations]
    if len(contents) > 1 and any(RESULT_SEPARATOR in content for content in contents):
        raise FormatError(
            "a parallel result contains LLaMA-Factory's result separator "
            f"{RESULT_SEPARATOR!r}, so the results could not be told apart",
            where,
        )
    out: dict[str, Any] = {"from": "observation", "value": RESULT_SEPARATOR.join(contents)}
    errors = [k for k, obs in enumerate(turn.observations) if obs.error]
    if errors:
        out["errors"] = errors
    return out


def parse(obj: dict[str, Any]) -> Trajectory:
    record_id, meta = split_meta(obj)
    conversations = obj.get("conversations")
    if not isinstance(conversations, list) or not conversations:
        raise FormatError("missing or empty: a list of turns is required", "conversations")
    system = obj.get("system")
    if system is not None and not isinstance(system, str):
        raise FormatError("must be a string", "system")
    question: str | None = None
    turn_list: list[Turn] = []
    weights: list[Any] = []
    calls_seen = 0
    for index, item in enumerate(conversations):
        where = f"conversations.{index}"
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise FormatError("must be an object with a string value", where)
        role, value = item.get("from"), item["value"]
        if role == "human":
            if question is None:
                question = value
            else:
                turn_list.append(follow_up(turn_list, value, where))
        elif question is None:
            raise FormatError(f"a {role!r} turn before the human question", where)
        elif role == "function_call":
            think, body, shift = _split_thought(value)
            say = item.get("content")
            if say is not None and not isinstance(say, str):
                raise FormatError("must be a string", f"{where}.content")
            calls = _calls(body, f"{where}.value", calls_seen, shift)
            append_turn(turn_list, Turn(think=think, say=say, calls=calls))
            calls_seen += len(calls)
            weights.append(item.get("weight"))
        elif role == "observation":
            _attach(item, where, turn_list)
        elif role == "gpt":
            think, body, _ = _split_thought(value)
            final = None if item.get("incomplete") else body
            append_turn(turn_list, Turn(think=think, final=final))
            weights.append(item.get("weight"))
        else:
            raise FormatError(
                f"unknown role {role!r}; expected human, function_call, observation or gpt", where
            )
    if question is None:
        raise FormatError("no human turn", "conversations")
    return build(
        id=record_id,
        question=question,
        system=system,
        tools=_tools(obj.get("tools")),
        steps=steps_of(turn_list),
        weights=[1 if w is None else w for w in weights]
        if any(w is not None for w in weights)
        else [],
        meta=meta,
    )


def _split_thought(value: str) -> tuple[str | None, str, int]:
    found = _THINK.match(value)
    if not found:
        return None, value, 0
    return found.group(1), value[found.end() :], found.end()


def _calls(body: str, where: str, calls_seen: int, shift: int) -> list[Any]:
    try:
        parsed = loads_lenient(body)
    except JsonProblem as exc:
        raise FormatError(f"bad JSON in function_call: {exc}", where, shift + exc.offset) from None
    items = parsed if isinstance(parsed, list) else [parsed]
    if not items:
        raise FormatError("a function_call turn with no call", where)
    return [call_from_object(item, calls_seen + k, f"{where}[{k}]") for k, item in enumerate(items)]


def _attach(item: dict[str, Any], where: str, turn_list: list[Turn]) -> None:
    turn = turn_list[-1] if turn_list else None
    if turn is None or not turn.calls or turn.observations:
        raise FormatError("an observation turn with no function_call turn before it", where)
    contents = [item["value"]] if len(turn.calls) == 1 else item["value"].split(RESULT_SEPARATOR)
    if len(contents) != len(turn.calls):
        raise FormatError(
            f"{len(turn.calls)} parallel calls but {len(contents)} results; results are "
            f"joined with {RESULT_SEPARATOR!r}",
            where,
        )
    errors = item.get("errors", [])
    if not isinstance(errors, list) or not all(isinstance(e, int) for e in errors):
        raise FormatError("must be a list of result indices", f"{where}.errors")
    turn.observations.extend(
        Observation(content=content, call_id=call.id, error=k in errors)
        for k, (content, call) in enumerate(zip(contents, turn.calls, strict=True))
    )


def _tools(raw: Any) -> list[Any]:
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FormatError(f"not valid JSON: {exc.msg}", "tools", exc.pos) from None
    if not isinstance(raw, list):
        raise FormatError("must be a JSON list of tools", "tools")
    return [parse_tool(tool, f"tools.{index}") for index, tool in enumerate(raw)]


register(Format("sharegpt", render, parse))
