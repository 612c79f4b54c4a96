"""Every file format a trajectory can be written in, each a renderer and a parser that round-trip.

    render(trajectory) -> dict      one JSON object, one line of a JSONL file
    parse(obj) -> Trajectory        raises FormatError saying where and what is wrong

Formats register by name; `fcsft convert --from NAME --to NAME` and the export stage look
them up here and nowhere else.
"""

from fcsft.formats import finetune, openai, sharegpt, tagged  # each registers itself
from fcsft.formats.base import (
    Format,
    FormatError,
    content_id,
    decode_arguments,
    format_names,
    get_format,
    meta_json,
    register,
)

__all__ = [
    "Format",
    "FormatError",
    "content_id",
    "decode_arguments",
    "finetune",
    "format_names",
    "get_format",
    "meta_json",
    "openai",
    "register",
    "sharegpt",
    "tagged",
]
