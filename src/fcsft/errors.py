"""The two kinds of failure fcsft tells apart: a user's mistake (one line, no traceback) and a bug."""

from __future__ import annotations

import importlib
from types import ModuleType


class UserError(Exception):
    """A mistake the user can fix: the CLI prints the message on one line and exits non-zero."""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or fail with the `pip install` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserError(f"{module} is not installed; run: pip install 'fcsft[{extra}]'") from exc


def validation_problems(exc: Exception) -> list[str]:
    """pydantic's complaints as `field.path: what is wrong`, unknown fields named as such."""
    problems = []
    for error in exc.errors():  # type: ignore[attr-defined]
        path = ".".join(str(part) for part in error["loc"])
        message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
        problems.append(f"{path}: {message}" if path else message)  # no path: the whole model
    return problems


def nothing_usable(problems: list[str], target: object) -> str:
    """The one line of a command that could use none of its input's lines: the first problem,
    how many more there were, and that `target` is unchanged."""
    more = f" ({len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}; no line could be used, so {target} was left as it was"
