"""OpenAI's chat fine-tuning format, exactly: what the fine-tuning upload accepts, nothing more.

    {"messages": [{"role": "system" | "user", "content": "..."},
                  {"role": "assistant", "content"?: "...", "tool_calls"?: [...], "weight"?: 0 | 1},
                  {"role": "tool", "tool_call_id": "...", "content": "..."}],
     "tools"?: [{"type": "function", "function": {"name", "description", "parameters"}}]}

It is the `openai` interchange format less what fine-tuning has no field for: thinking
(`reasoning_content`) is dropped, tool results lose `name` and `is_error`, `meta` is left out
(the export writes it to a sidecar file keyed by line), and `tools` is left out when empty,
since OpenAI-compatible servers refuse an empty list. An assistant message that calls tools
has `content` only when it shows text beside the calls. Parsing reads it as `openai`, so the
record comes back without its thinking, its errors marked and its meta.

A turn with neither calls nor an answer (a run cut off while thinking) has no form here and
is refused.
"""

from __future__ import annotations

from typing import Any

from fcsft.formats import openai as interchange
from fcsft.formats.base import Format, FormatError, register
from fcsft.records import Trajectory, turns


def render(trajectory: Trajectory) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if trajectory.system is not None:
        messages.append({"role": "system", "content": trajectory.system})
    messages.append({"role": "user", "content": trajectory.question})
    for number, turn in enumerate(turns(trajectory.steps)):
        message: dict[str, Any] = {"role": "assistant"}
        if turn.calls:
            if turn.say is not None:
                message["content"] = turn.say
            message["tool_calls"] = [interchange.call_json(call) for call in turn.calls]
        elif turn.final is not None:
            message["content"] = turn.final
        else:
            raise FormatError(
                "a turn with neither tool calls nor an answer (a run cut off while thinking) "
                "has no form in OpenAI's fine-tuning format",
                f"turns.{number}",
            )
        if trajectory.weights:
            message["weight"] = trajectory.weights[number]
        messages.append(message)
        messages.extend(
            {"role": "tool", "tool_call_id": obs.call_id, "content": obs.content}
            for obs in turn.observations
        )
    record: dict[str, Any] = {"messages": messages}
    if trajectory.tools:
        record["tools"] = [interchange.tool_json(tool) for tool in trajectory.tools]
    return record


register(Format("openai-finetune", render, interchange.parse))
