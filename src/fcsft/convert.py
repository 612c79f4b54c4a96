"""Whole-file conversion between trajectory formats; a bad line is set aside, never dropped."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fcsft.errors import UserError, nothing_usable
from fcsft.files import check_target, open_input, replacing, same_file
from fcsft.formats import FormatError, get_format
from fcsft.jsonl import dumps, read_lines


@dataclass
class Converted:
    written: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)  # "file:line: where at offset N: what"
    rejected_path: Path | None = None


class _NothingConverted(Exception):
    """Every line failed: both replacements are abandoned."""


def rejected_path_for(out: Path) -> Path:
    stem = out.name[: -len(".jsonl")] if out.name.endswith(".jsonl") else out.name
    return out.with_name(f"{stem}.rejected.jsonl")


def convert_file(source: Path, out: Path, from_format: str, to_format: str) -> Converted:
    """Convert every line of `source`; lines that fail go to OUT.rejected.jsonl with the reason.

    Neither output may be the source; both are written whole or not at all, so a failed
    conversion leaves OUT as it was. So does one where every line failed (a UserError
    naming the first)."""
    reader, writer = get_format(from_format), get_format(to_format)
    result = Converted(rejected_path=rejected_path_for(out))
    open_input(source).close()
    check_target(out, source)
    if same_file(result.rejected_path, source):
        raise UserError(
            f"{out}: its rejected lines would go to {result.rejected_path}, which is the input; "
            "name another target"
        )
    check_target(result.rejected_path)
    try:
        with replacing(out) as good, replacing(result.rejected_path) as bad:
            for line in read_lines(source):
                problem = line.error
                if problem is None:
                    try:
                        good.write(dumps(writer.render(reader.parse(line.obj))) + "\n")
                        result.written += 1
                        continue
                    except FormatError as exc:
                        problem = str(exc)
                result.rejected += 1
                result.problems.append(f"{source}:{line.number}: {problem}")
                bad.write(dumps({"line": line.number, "error": problem, "input": line.raw}) + "\n")
            if result.rejected and not result.written:
                raise _NothingConverted  # neither file is written
    except _NothingConverted:
        raise UserError(nothing_usable(result.problems, out)) from None
    if not result.rejected:
        result.rejected_path.unlink()
        result.rejected_path = None
    return result
