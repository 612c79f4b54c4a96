"""The one JSONL reader and writer: a line is one JSON object; a bad line is named by its number.

A line that is not UTF-8, not JSON or not an object is handed back with what is wrong with it,
so a reader can set it aside and go on; a byte order mark and CRLF line ends are read as if
they were not there. Files are written whole or not at all (`fcsft.files.replacing`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcsft.errors import UserError
from fcsft.files import decode, not_utf8, open_input, replacing


@dataclass
class Line:
    """One line of a JSONL file: the parsed object, or why it could not be parsed."""

    number: int
    raw: str  # the line as read, without its line end (bytes that are not UTF-8 as \xNN)
    obj: Any = None
    error: str | None = None


def read_lines(path: Path | str) -> Iterator[Line]:
    """Every non-blank line, parsed; a line that is not a JSON object carries an error instead."""
    with open_input(path) as handle:
        for number, data in enumerate(handle, start=1):
            try:
                raw = decode(data, path, first=number == 1).rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raw = data.decode("utf-8", "backslashreplace").rstrip("\r\n")
                yield Line(number, raw, error=not_utf8(exc))
                continue
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                yield Line(number, raw, error=f"not valid JSON at offset {exc.pos}: {exc.msg}")
                continue
            if not isinstance(obj, dict):
                yield Line(number, raw, error=f"expected a JSON object, got {type(obj).__name__}")
            else:
                yield Line(number, raw, obj=obj)


def read_numbered(path: Path | str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a file that must be valid throughout; the first bad line is a
    UserError."""
    for line in read_lines(path):
        if line.error:
            raise UserError(f"{path}:{line.number}: {line.error}")
        yield line.number, line.obj


def read_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    """Objects of a file that must be valid throughout; the first bad line is a UserError."""
    for _, obj in read_numbered(path):
        yield obj


def dumps(obj: Any) -> str:
    """One line of JSON. Text stays as it is, except that a lone surrogate (which a `\\ud800`
    escape in the input decodes to, and UTF-8 cannot hold) keeps its escape."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":"))
    return text


def write_jsonl(path: Path | str, objs: Iterable[Any]) -> int:
    """Write a whole file atomically (temp file, then rename); returns the number of lines."""
    count = 0
    with replacing(path) as handle:
        for obj in objs:
            handle.write(dumps(obj) + "\n")
            count += 1
    return count


def write_json(path: Path | str, obj: Any) -> None:
    """Write one JSON document atomically."""
    with replacing(path) as handle:
        handle.write(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")


def read_json_object(path: Path | str) -> dict[str, Any] | None:
    """A small JSON document that should hold an object (a marker, a stats file): None when it
    is missing, unreadable or something else, for the caller to recompute or report."""
    try:
        obj = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def record_id(obj: dict[str, Any]) -> str | None:
    """A record's id: top-level for tasks and seeds, under `meta` for trajectories."""
    ident = obj.get("id")
    if ident is None and isinstance(obj.get("meta"), dict):
        ident = obj["meta"].get("id")
    return ident if isinstance(ident, str) else None
