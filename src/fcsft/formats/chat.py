"""Chat messages as plain text for models that speak the tagged protocol.

Templates like SmolLM2's ChatML ignore `tools=` and know nothing of `tool_calls`, so fcsft
describes the tools in the system message and writes each assistant turn as tagged text. The
teacher with `protocol: tagged`, the local provider, training and evaluation all render through
`text_messages`: one code path, so a model is served exactly the text it was trained on.
"""

from __future__ import annotations

import json
from typing import Any

from fcsft.formats.base import decode_arguments
from fcsft.formats.openai import parse_tool
from fcsft.formats.tagged import holds_markup, render_text
from fcsft.records import FinalAnswer, Observation, Say, Think, ToolCall, call_id

TOOLS_PROMPT = """\
You can call these functions, each described by a JSON schema:
<tools>
{tools}
</tools>
To call a function write <tool_call>{{"name": "NAME", "arguments": {{...}}}}</tool_call> and stop; \
several calls in a row run in parallel. Results come back as <observation>...</observation>. \
You may think first inside <think>...</think>. When you can answer, write \
<final_answer>...</final_answer>. If no function is needed, answer directly."""


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    """The system-prompt block that describes the tools (OpenAI tool dicts or bare functions)."""
    lines = [
        json.dumps(parse_tool(tool, f"tools.{index}").to_json(), ensure_ascii=False)
        for index, tool in enumerate(tools)
    ]
    return TOOLS_PROMPT.format(tools="\n".join(lines))


def assistant_text(message: dict[str, Any]) -> str:
    """An OpenAI assistant message as the tagged text the model should have produced.

    Call ids are bookkeeping, not something a model should learn to write, so each call gets
    the id its position implies, which the tagged renderer leaves out. A plain reply that
    already holds tagged markup (one the model wrote that could not be read, kept in the
    history as written, as BFCL's multi-turn runs keep it) is shown as written.
    """
    content = message.get("content")
    plain = not message.get("tool_calls") and message.get("reasoning_content") is None
    if plain and isinstance(content, str) and holds_markup(content):
        return content
    steps: list[Any] = []
    if message.get("reasoning_content") is not None:
        steps.append(Think(text=message["reasoning_content"]))
    calls = message.get("tool_calls") or []
    if calls and (message.get("content") or "").strip():
        steps.append(Say(text=message["content"]))
    for k, raw in enumerate(calls):
        function = raw.get("function", raw)
        arguments = decode_arguments(function.get("arguments", {}), f"tool_calls.{k}")
        steps.append(ToolCall(name=function["name"], arguments=arguments, id=call_id(k)))
    if not calls and message.get("content") is not None:
        steps.append(FinalAnswer(text=message["content"]))
    return render_text(steps)


def observation_text(message: dict[str, Any]) -> str:
    content = message.get("content", "")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False)
    step = Observation(content=content, call_id="", error=bool(message.get("is_error")))
    return render_text([step])


def text_messages(
    messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
) -> list[dict[str, str]]:
    """Role/content messages with tools in the system prompt and turns as tagged text."""
    out: list[dict[str, str]] = []
    for message in messages:
        role = message["role"]
        if role == "assistant":
            out.append({"role": "assistant", "content": assistant_text(message)})
        elif role == "tool":
            block = observation_text(message)
            if out and out[-1]["role"] == "tool":
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "tool", "content": block})
        else:
            out.append({"role": role, "content": message.get("content") or ""})
    if tools:
        block = tools_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content']}\n\n{block}" if out[0]["content"] else block
        else:
            out.insert(0, {"role": "system", "content": block})
    return out
