"""What every format is built on: the Format record and its registry, FormatError, the `meta`
object every file format carries, and the decoding of call arguments."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fcsft.errors import UserError
from fcsft.formats.json_text import JsonProblem, loads_lenient
from fcsft.records import Trajectory


class FormatError(ValueError):
    """A record that is not valid in its format. `where` is a field path, `offset` a char index."""

    def __init__(self, message: str, where: str = "", offset: int | None = None):
        self.message = message
        self.where = where
        self.offset = offset
        super().__init__(str(self))

    def __str__(self) -> str:
        place = self.where
        if self.offset is not None:
            place = f"{place} at offset {self.offset}" if place else f"offset {self.offset}"
        return f"{place}: {self.message}" if place else self.message

    def within(self, prefix: str, shift: int = 0) -> FormatError:
        """The same error seen from an enclosing field (offsets shift with the text)."""
        where = f"{prefix}.{self.where}" if self.where else prefix
        offset = None if self.offset is None else self.offset + shift
        return FormatError(self.message, where, offset)


@dataclass(frozen=True)
class Format:
    name: str
    render: Callable[[Trajectory], dict[str, Any]]
    parse: Callable[[dict[str, Any]], Trajectory]


_FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    _FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> Format:
    if name not in _FORMATS:
        raise UserError(f"unknown format {name!r}; known: {', '.join(sorted(_FORMATS))}")
    return _FORMATS[name]


def format_names() -> list[str]:
    return sorted(_FORMATS)


def content_id(obj: Any) -> str:
    """A stable id for a record that came without one: the hash of its canonical JSON."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False).encode()
    return "h" + hashlib.sha256(blob).hexdigest()[:16]


def meta_json(trajectory: Trajectory) -> dict[str, Any]:
    """The `meta` object the file formats carry: the id, then everything in Trajectory.meta."""
    return {"id": trajectory.id, **trajectory.meta.model_dump(mode="json", exclude_defaults=True)}


def split_meta(obj: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Undo `meta_json`: the id (derived from the content when absent) and the rest."""
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise FormatError("must be an object", "meta")
    meta = dict(meta)
    record_id = meta.pop("id", None)
    if record_id is None:
        record_id = content_id(obj)
    if not isinstance(record_id, str):
        raise FormatError(f"must be a string, got {type(record_id).__name__}", "meta.id")
    return record_id, meta


def build(where: str = "", **fields: Any) -> Trajectory:
    """Make a Trajectory, turning pydantic's complaint into a FormatError."""
    from pydantic import ValidationError

    try:
        return Trajectory(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ".".join(str(part) for part in first["loc"])
        raise FormatError(first["msg"], f"{where}{path}" if where else path) from None


def decode_arguments(value: Any, where: str, offset: int | None = None) -> dict[str, Any]:
    """Arguments as an object; a JSON string holding an object (OpenAI's wire form) is accepted."""
    if isinstance(value, str):
        try:
            value = loads_lenient(value)
        except JsonProblem as exc:
            raise FormatError(f"arguments are not valid JSON: {exc}", where, offset) from None
    if not isinstance(value, dict):
        raise FormatError(f"arguments must be a JSON object, got {kind(value)}", where, offset)
    return value


def kind(value: Any) -> str:
    """A value's JSON-ish type name, for error messages."""
    return "null" if value is None else type(value).__name__
