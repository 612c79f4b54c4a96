"""The one JSONL reader and writer: a line is one JSON object; a bad line is named by its number."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcsft.errors import UserError


@dataclass
class Line:
    """One line of a JSONL file: the parsed object, or why it could not be parsed."""

    number: int
    raw: str
    obj: Any = None
    error: str | None = None


def read_lines(path: Path | str) -> Iterator[Line]:
    """Every non-blank line, parsed; a line that is not a JSON object carries an error instead."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such file")
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                yield Line(number, raw, error=f"not valid JSON at offset {exc.pos}: {exc.msg}")
                continue
            if not isinstance(obj, dict):
                yield Line(number, raw, error=f"expected a JSON object, got {type(obj).__name__}")
            else:
                yield Line(number, raw, obj=obj)


def read_jsonl(path: Path | str) -> Iterator[dict[str, Any]]:
    """Objects of a file that must be valid throughout; the first bad line is a UserError."""
    for line in read_lines(path):
        if line.error:
            raise UserError(f"{path}:{line.number}: {line.error}")
        yield line.obj


def dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def write_jsonl(path: Path | str, objs: Iterable[Any]) -> int:
    """Write a whole file atomically (temp file, then rename); returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as handle:
        for obj in objs:
            handle.write(dumps(obj) + "\n")
            count += 1
    os.replace(tmp, path)
    return count


def write_json(path: Path | str, obj: Any) -> None:
    """Write one JSON document atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json_object(path: Path | str) -> dict[str, Any] | None:
    """A small JSON document that should hold an object (a marker, a stats file): None when it
    is missing, unreadable or something else, for the caller to recompute or report."""
    try:
        obj = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None
