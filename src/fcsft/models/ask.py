"""Ask a model for a short structured answer, and parse it the forgiving way small models need."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fcsft.formats.json_text import JsonProblem, loads_lenient
from fcsft.models.base import ChatRequest, ChatResponse, ModelError

_ITEM = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+(.+?)\s*$", re.MULTILINE)


@dataclass
class Answer:
    text: str = ""
    error: str | None = None  # why there is no usable answer
    usage: dict[str, float] | None = None
    calls: int = 0  # tool calls the reply made (a prompt that offers no tools wants none)


async def ask(
    model: Any,
    model_name: str,
    prompt: str,
    *,
    temperature: float = 0.7,
    max_tokens: int = 400,
) -> Answer:
    """One user prompt, one reply; a failed request is an Answer with an error, not a raise."""
    request = ChatRequest(
        model=model_name,
        messages=[{"role": "user", "content": prompt}],
        temperature=temperature,
        max_tokens=max_tokens,
    )
    try:
        response: ChatResponse = await model.chat(request)
    except ModelError as exc:
        return Answer(error=f"model failed: {exc}")
    return Answer(
        text=(response.message.get("content") or "").strip(),
        usage=response.usage.model_dump(),
        calls=len(response.message.get("tool_calls") or []),
    )


def string_list(text: str) -> list[str] | None:
    """A JSON list of strings found in the text, else numbered or bulleted lines, else None."""
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        try:
            value = loads_lenient(text[start : end + 1])
        except JsonProblem:
            value = None
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return [v.strip() for v in value if v.strip()]
    items = [item.strip("\"' ") for item in _ITEM.findall(text)]
    return [item for item in items if item] or None


def one_line(text: str) -> str | None:
    """The first non-empty line without quotes or a 'Question:' label."""
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:question|combined question)\s*:\s*", "", line, flags=re.I)
        line = line.strip().strip("\"'").strip()
        if line:
            return line
    return None
