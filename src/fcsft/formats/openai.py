"""The interchange format: `{"tools": [...], "messages": [...], "meta": {...}}` a line.

Assistant messages carry `tool_calls` (arguments as a JSON string, as the API sends them),
their thinking in `reasoning_content` (the DeepSeek / vLLM field), text shown beside the calls
in `content`, and OpenAI's training `weight` (0 or 1) when the trajectory has weights. Tool
results are `role: "tool"` messages; a failed one has `"is_error": true`. A follow-up is a
`user` message after the reply to the one before. Every later stage reads this. `fcsft.formats.finetune` writes the subset OpenAI's fine-tuning accepts.
"""

from __future__ import annotations

import json
from typing import Any

from fcsft.formats.base import (
    Format,
    FormatError,
    build,
    decode_arguments,
    meta_json,
    register,
    split_meta,
)
from fcsft.records import (
    Observation,
    Tool,
    ToolCall,
    Trajectory,
    Turn,
    append_turn,
    call_id,
    steps_of,
    turns,
)

# ---------------------------------------------------------------- rendering


def tool_json(tool: Tool) -> dict[str, Any]:
    function = {"name": tool.name, "description": tool.description, "parameters": tool.parameters}
    return {"type": "function", "function": function}


def call_json(call: ToolCall) -> dict[str, Any]:
    """One call as the API sends it: arguments as a JSON string."""
    arguments = json.dumps(call.arguments, ensure_ascii=False)
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": arguments},
    }


def assistant_message(turn: Turn, weight: int | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": turn.say if turn.calls else turn.final,
    }
    if turn.think is not None:
        message["reasoning_content"] = turn.think
    if turn.calls:
        message["tool_calls"] = [call_json(call) for call in turn.calls]
    if weight is not None:
        message["weight"] = weight
    return message


def tool_message(observation: Observation, name: str) -> dict[str, Any]:
    message = {
        "role": "tool",
        "tool_call_id": observation.call_id,
        "name": name,
        "content": observation.content,
    }
    if observation.error:
        message["is_error"] = True
    return message


def conversation(trajectory: Trajectory) -> list[dict[str, Any]]:
    """The chat messages of a trajectory, system prompt first when there is one."""
    messages: list[dict[str, Any]] = []
    if trajectory.system is not None:
        messages.append({"role": "system", "content": trajectory.system})
    messages.append({"role": "user", "content": trajectory.question})
    for number, turn in enumerate(turns(trajectory.steps)):
        weight = trajectory.weights[number] if trajectory.weights else None
        if turn.user is not None:
            messages.append({"role": "user", "content": turn.user})
        messages.append(assistant_message(turn, weight))
        names = {call.id: call.name for call in turn.calls}
        messages.extend(tool_message(obs, names[obs.call_id]) for obs in turn.observations)
    return messages


def render(trajectory: Trajectory) -> dict[str, Any]:
    return {
        "tools": [tool_json(tool) for tool in trajectory.tools],
        "messages": conversation(trajectory),
        "meta": meta_json(trajectory),
    }


# ------------------------------------------------------------------ parsing


def parse(obj: dict[str, Any]) -> Trajectory:
    record_id, meta = split_meta(obj)
    messages = obj.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FormatError("missing or empty: a list of chat messages is required", "messages")
    tools = obj.get("tools") or []
    if not isinstance(tools, list):
        raise FormatError("must be a list", "tools")
    system, question, turn_list = parse_messages(messages)
    return build(
        id=record_id,
        question=question,
        system=system,
        tools=[parse_tool(tool, f"tools.{index}") for index, tool in enumerate(tools)],
        steps=steps_of(turn_list),
        weights=weights_of(messages),
        meta=meta,
    )


def weights_of(messages: list[dict[str, Any]]) -> list[int]:
    """Each assistant message's `weight` (1 where one is missing); empty when none has one."""
    assistant = [(k, m) for k, m in enumerate(messages) if m.get("role") == "assistant"]
    if not any("weight" in message for _, message in assistant):
        return []
    weights = []
    for index, message in assistant:
        weight = message.get("weight", 1)
        if weight not in (0, 1) or isinstance(weight, bool):
            raise FormatError(f"must be 0 or 1, got {weight!r}", f"messages.{index}.weight")
        weights.append(weight)
    return weights


def parse_tool(obj: Any, where: str) -> Tool:
    """A tool in either OpenAI's wrapped form or as a bare function object."""
    if isinstance(obj, dict) and obj.get("type") == "function" and "function" in obj:
        obj, where = obj["function"], f"{where}.function"
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
        raise FormatError("must be an object with a string name", where)
    parameters = obj.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(parameters, dict):
        raise FormatError("must be a JSON schema object", f"{where}.parameters")
    description = obj.get("description") or ""
    return Tool(name=obj["name"], description=description, parameters=parameters)


def parse_messages(messages: list[Any]) -> tuple[str | None, str, list[Turn]]:
    """System prompt, question and turns (follow-ups included) from a chat; FormatError names
    the message."""
    system: str | None = None
    question: str | None = None
    turn_list: list[Turn] = []
    calls_seen = 0
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, dict):
            raise FormatError("must be an object", where)
        role = message.get("role")
        content = message.get("content")
        if role == "system":
            if index != 0:
                raise FormatError("a system message may only come first", where)
            system = _text(content, f"{where}.content")
        elif role == "user":
            text = _text(content, f"{where}.content")
            if question is None:
                question = text
            else:
                turn_list.append(follow_up(turn_list, text, where))
        elif role == "assistant":
            if question is None:
                raise FormatError("an assistant message before the user's question", where)
            turn = _assistant_turn(message, where, calls_seen)
            calls_seen += len(turn.calls)
            append_turn(turn_list, turn)
        elif role == "tool":
            _attach_result(message, where, turn_list)
        else:
            raise FormatError(
                f"unknown role {role!r}; expected system, user, assistant or tool", where
            )
    if question is None:
        raise FormatError("no user message", "messages")
    for turn in turn_list:
        order = {call.id: rank for rank, call in enumerate(turn.calls)}
        turn.observations.sort(key=lambda obs: order[obs.call_id])
    return system, question, turn_list


def follow_up(turn_list: list[Turn], text: str, where: str) -> Turn:
    """The turn a later user message opens; FormatError when nothing came back before it."""
    if not turn_list or turn_list[-1].awaiting:
        raise FormatError("two user messages with no assistant reply between them", where)
    if not text.strip():
        raise FormatError("an empty user message after the question", where)
    return Turn(user=text)


def _assistant_turn(message: dict[str, Any], where: str, calls_seen: int) -> Turn:
    content = message.get("content")
    if content is not None:
        content = _text(content, f"{where}.content")
    think = message.get("reasoning_content")
    if think is not None:
        think = _text(think, f"{where}.reasoning_content")
    raw_calls = message.get("tool_calls") or []
    if not isinstance(raw_calls, list):
        raise FormatError("must be a list", f"{where}.tool_calls")
    calls = [
        _call(raw, f"{where}.tool_calls.{k}", calls_seen + k) for k, raw in enumerate(raw_calls)
    ]
    if calls:
        # Text beside calls is shown to the user; blank text is no text (Say is never empty).
        say = content.strip() if content and content.strip() else None
        return Turn(think=think, say=say, calls=calls)
    return Turn(think=think, final=content)


def _call(raw: Any, where: str, position: int) -> ToolCall:
    if not isinstance(raw, dict):
        raise FormatError("must be an object", where)
    function = raw.get("function", raw)
    if not isinstance(function, dict):
        raise FormatError("must be an object", f"{where}.function")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise FormatError(f"must be a non-empty string, got {name!r}", f"{where}.function.name")
    arguments = decode_arguments(function.get("arguments", {}), f"{where}.function.arguments")
    ident = raw.get("id") or call_id(position)
    if not isinstance(ident, str):
        raise FormatError("must be a string", f"{where}.id")
    return ToolCall(name=name, arguments=arguments, id=ident)


def _attach_result(message: dict[str, Any], where: str, turn_list: list[Turn]) -> None:
    turn = turn_list[-1] if turn_list else None
    if turn is None or not turn.calls:
        raise FormatError("a tool result with no tool call before it", where)
    answered = {obs.call_id for obs in turn.observations}
    waiting = [call.id for call in turn.calls if call.id not in answered]
    ident = message.get("tool_call_id")
    if ident is None and waiting:
        ident = waiting[0]  # results without ids answer the calls in order
    if ident not in waiting:
        raise FormatError(
            f"tool_call_id {ident!r} answers no waiting call; waiting: {waiting}", where
        )
    content = message.get("content")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    error = bool(message.get("is_error", False))
    turn.observations.append(Observation(content=content, call_id=ident, error=error))


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(
        isinstance(part, dict) and part.get("type") == "text" for part in value
    ):
        return "".join(part.get("text", "") for part in value)  # OpenAI's content parts
    raise FormatError(f"must be text, got {type(value).__name__}", where)


register(Format("openai", render, parse))
