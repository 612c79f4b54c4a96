"""JSON as teachers write it: tolerant of a code fence and trailing commas, strict about the rest."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"^\s*```[A-Za-z]*[ \t]*\n?(.*?)\n?[ \t]*```\s*$", re.DOTALL)


class JsonProblem(ValueError):
    """Text that is not JSON; `offset` indexes the text as it was given."""

    def __init__(self, message: str, offset: int):
        super().__init__(message)
        self.offset = offset


def loads_lenient(text: str) -> Any:
    """Parse JSON that may sit in a ``` fence and may have trailing commas.

    Nothing else is repaired: a repair that guesses could turn one call into another.
    """
    start = 0
    fence = _FENCE.match(text)
    if fence:
        start = fence.start(1)
        text = fence.group(1)
    try:
        return json.loads(text)
    except json.JSONDecodeError as first:
        cleaned = _drop_trailing_commas(text)
        if cleaned != text:
            try:
                return json.loads(cleaned)
            except json.JSONDecodeError:
                pass
        raise JsonProblem(first.msg, start + first.pos) from None


def _drop_trailing_commas(text: str) -> str:
    """Remove commas that stand before a closing bracket, outside strings."""
    out: list[str] = []
    in_string = False
    escaped = False
    pending_comma: int | None = None
    for char in text:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending_comma is not None:
            del out[pending_comma]
        if char == ",":
            pending_comma = len(out)
        elif not char.isspace():
            pending_comma = None
        if char == '"':
            in_string = True
        out.append(char)
    return "".join(out)
