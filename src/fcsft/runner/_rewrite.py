"""Taking finished inputs out of a stage directory, so that the next attempt does them again.

A stage's three append-only files (outputs, rejections, ledger) agree line by line: the ledger
says how many lines of each of the others every input wrote, in order. Dropping an input
means writing all three again without its lines, and three renames are not one atomic step.
So the new files are written beside the old ones first, then a journal naming them, which is
the moment the rewrite happens; the renames follow, and the journal goes last. A crash before
the journal leaves the old files (the half-written new ones are removed); a crash after it
leaves a rewrite that `finish_rewrite` completes before anything else reads the folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

from fcsft.jsonl import write_json

JOURNAL = "_rewrite.json"


def _temporary(directory: Path, name: str) -> Path:
    return directory / f".{name}.rewrite"


def finish_rewrite(directory: Path, names: tuple[str, ...]) -> None:
    """Complete a rewrite a crash cut off after its journal, or discard one cut off before."""
    journal = directory / JOURNAL
    for name in names:
        temporary = _temporary(directory, name)
        if journal.exists() and temporary.exists():
            os.replace(temporary, directory / name)
        else:
            temporary.unlink(missing_ok=True)
    journal.unlink(missing_ok=True)


def drop_inputs(directory: Path, ledger: str, files: tuple[str, ...], ids: set[str]) -> None:
    """Rewrite `ledger` and `files` (whose line counts its entries give under the same names,
    without `.jsonl`) without the lines of the inputs in `ids`. The files must agree with the
    ledger (as after recovery)."""
    names = (*files, ledger)
    with ExitStack() as stack:
        sources = [stack.enter_context((directory / name).open("rb")) for name in files]
        *targets, book = [
            stack.enter_context(_temporary(directory, name).open("wb")) for name in names
        ]
        for raw, entry in _entries(directory / ledger):
            kept = entry["id"] not in ids
            for name, source, target in zip(files, sources, targets, strict=True):
                for _ in range(entry[name.removesuffix(".jsonl")]):
                    line = source.readline()
                    if kept:
                        target.write(line)
            if kept:
                book.write(raw)
    write_json(directory / JOURNAL, {"files": list(names)})
    finish_rewrite(directory, names)


def _entries(path: Path) -> Iterator[tuple[bytes, dict]]:
    with path.open("rb") as handle:
        for raw in handle:
            yield raw, json.loads(raw)
