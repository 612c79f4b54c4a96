"""Read a tool's description and its parameters' descriptions out of a docstring.

The model only sees the schema, so the words a developer already wrote for people are the
best description we have. Two common layouts are understood:

    Google:  Args:                          reST:  :param city: The city.
                 city (str): The city.             :param int days: How many days.
                 days: How many days,
                     counted from today.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

_GOOGLE_ARGS = {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments"}
_GOOGLE_SECTIONS = _GOOGLE_ARGS | {
    "returns",
    "return",
    "yields",
    "raises",
    "examples",
    "example",
    "notes",
    "note",
    "attributes",
    "see also",
    "warning",
    "warnings",
    "todo",
    "references",
}
_SECTION = re.compile(r"^([A-Za-z][A-Za-z ]*):\s*$")
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\(([^)]*)\))?\s*:\s*(.*)$")
_REST_FIELD = re.compile(r"^:(\w+)(?:\s+([^:]+?))?:\s*(.*)$")


@dataclass
class Docstring:
    """The description of a function and of each parameter it documents."""

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> Docstring:
    """Split a docstring into its free text and its per-parameter descriptions."""
    if not doc:
        return Docstring()
    lines = inspect.cleandoc(doc).splitlines()
    free: list[str] = []
    params: dict[str, str] = {}
    index = 0
    while index < len(lines):
        line = lines[index]
        header = _SECTION.match(line)
        if header and header.group(1).strip().lower() in _GOOGLE_SECTIONS:
            body, index = _indented_block(lines, index + 1)
            if header.group(1).strip().lower() in _GOOGLE_ARGS:
                params.update(_google_entries(body))
            continue
        rest = _REST_FIELD.match(line.strip())
        if rest:
            body, index = _indented_block(lines, index + 1)
            if rest.group(1) in ("param", "parameter", "arg", "argument") and rest.group(2):
                name = rest.group(2).split()[-1]
                params[name] = _join([rest.group(3), *body])
            continue
        free.append(line)
        index += 1
    return Docstring(description=_paragraphs(free), params=params)


def _indented_block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The lines indented under a header, dedented, and the index where the block ends."""
    end = start
    while end < len(lines) and (not lines[end].strip() or lines[end][:1].isspace()):
        end += 1
    while end > start and not lines[end - 1].strip():
        end -= 1  # trailing blank lines belong to the free text that follows
    block = lines[start:end]
    margin = min((len(line) - len(line.lstrip()) for line in block if line.strip()), default=0)
    return [line[margin:].rstrip() for line in block], end


def _google_entries(body: list[str]) -> dict[str, str]:
    """`name (type): text` entries at the block's margin; deeper lines continue the entry above."""
    entries: dict[str, list[str]] = {}
    current: list[str] = []
    for line in body:
        entry = _GOOGLE_ENTRY.match(line) if line[:1].strip() else None
        if entry:
            current = entries.setdefault(entry.group(1), [])
            current.append(entry.group(3))
        else:
            current.append(line)
    return {name: _join(parts) for name, parts in entries.items()}


def _join(parts: list[str]) -> str:
    return " ".join(part.strip() for part in parts if part.strip())


def _paragraphs(lines: list[str]) -> str:
    """Free text with each paragraph on one line: schema descriptions are read, not rendered."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join(paragraphs)
