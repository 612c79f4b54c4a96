"""What a tool call gives back to the agent loop: the observation text and whether it failed."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class ToolResult:
    """One observation. `error` marks a failed call; the trajectory keeps it either way."""

    content: str
    error: bool = False

    @classmethod
    def failure(cls, message: str) -> ToolResult:
        return cls(message, error=True)


def render(value: Any) -> str:
    """The text a model sees for a function's return value.

    Strings pass through unchanged so a tool controls its own wording; everything else becomes
    JSON, because a model reads JSON reliably and validators can parse numbers back out of it.
    """
    if isinstance(value, str):
        return value
    return json.dumps(_plain(value), ensure_ascii=False, default=str)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value
