"""Read a tool's description and its parameters' descriptions out of a docstring.

The model only sees the schema, so the words a developer already wrote for people are the
best description we have. `docstring_parser` reads the three common layouts (it tries each
and keeps the one that understood most):

    Google:  Args:                   reST:  :param city: The city.     NumPy:  Parameters
                 city (str): The city.      :param int days: How many.          ----------
                 days: How many days,                                           city : str
                     counted from today.                                            The city.

Descriptions are put on one line per paragraph: a schema's text is read, not rendered.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import docstring_parser


@dataclass
class Docstring:
    """The description of a function and of each parameter it documents."""

    description: str = ""
    params: dict[str, str] = field(default_factory=dict)


def parse_docstring(doc: str | None) -> Docstring:
    """Split a docstring into its free text and its per-parameter descriptions."""
    if not doc or not doc.strip():
        return Docstring()
    parsed = docstring_parser.parse(inspect.cleandoc(doc))
    free = "\n\n".join(part for part in (parsed.short_description, parsed.long_description) if part)
    params = {
        param.arg_name.lstrip("*"): _paragraphs(param.description or "")
        for param in parsed.params
        if param.args[0] in ("param", "parameter", "arg", "argument", "key", "keyword")
    }
    return Docstring(description=_paragraphs(free), params=params)


def _paragraphs(text: str) -> str:
    """Each paragraph on one line, paragraphs separated by a blank line."""
    paragraphs: list[str] = []
    current: list[str] = []
    for line in [*text.splitlines(), ""]:
        if line.strip():
            current.append(line.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    return "\n\n".join(paragraphs)
