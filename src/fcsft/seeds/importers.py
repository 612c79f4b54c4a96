"""Seeds from JSONL, CSV and YAML files, and conversations mined from chat logs.

A bad row never stops an import: it is reported with its file and line, and every good row
still comes through. Readers register by file suffix.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from fcsft.errors import UserError, validation_problems
from fcsft.files import open_input, read_text
from fcsft.formats import content_id
from fcsft.jsonl import read_lines, read_numbered
from fcsft.records import Seed
from fcsft.text.minhash import NearDuplicates
from fcsft.text.pii import detector_for, scrub


@dataclass
class Imported:
    seeds: list[Seed] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # "file:line: what is wrong"
    scrubbed: Counter = field(default_factory=Counter)  # PII placeholders inserted, by kind
    near_duplicates: list[NearDuplicate] = field(default_factory=list)

    @property
    def duplicates(self) -> int:
        return len(self.near_duplicates)


@dataclass
class NearDuplicate:
    """A mined question left out because a kept one says nearly the same."""

    where: str  # "file:line:message", unique per mined question
    seed: Seed
    of: str  # the kept seed's id
    similarity: float


Row = tuple[int, dict[str, Any]]  # (line number, raw fields)
_UNDECODED = re.compile("[\udc80-\udcff]")  # a byte that was not UTF-8, read as a surrogate
_READERS: dict[str, Callable[[Path], Iterator[Row | tuple[int, str]]]] = {}


def reader(*suffixes: str):
    def wrap(function):
        for suffix in suffixes:
            _READERS[suffix] = function
        return function

    return wrap


@reader(".jsonl")
def _jsonl_rows(path: Path) -> Iterator[Row | tuple[int, str]]:
    for line in read_lines(path):
        yield (line.number, line.error) if line.error else (line.number, line.obj)


@reader(".csv")
def _csv_rows(path: Path) -> Iterator[Row | tuple[int, str]]:
    # Bytes that are not UTF-8 are kept as surrogates, so that only their row is set aside.
    with (
        open_input(path) as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="") as handle,
    ):
        rows = csv.DictReader(handle)
        if not rows.fieldnames or "question" not in rows.fieldnames:
            raise UserError(f"{path}:1: the header needs a 'question' column")
        for row in rows:
            number = rows.line_num
            if any(_UNDECODED.search(str(value)) for value in row.values()):
                yield number, "not valid UTF-8; save the file as UTF-8"
                continue
            if None in row:
                yield (
                    number,
                    f"{len(row[None]) + len(rows.fieldnames)} fields, header has {len(rows.fieldnames)}",
                )
                continue
            try:
                yield number, _from_csv(row)
            except ValueError as exc:
                yield number, str(exc)


def _from_csv(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in row.items() if v not in (None, "")}
    if "tags" in out:
        out["tags"] = [t.strip() for t in out["tags"].replace(";", ",").split(",") if t.strip()]
    if "plan" in out:
        try:
            out["plan"] = json.loads(out["plan"])
        except json.JSONDecodeError as exc:
            raise ValueError(f"plan: not valid JSON at offset {exc.pos}: {exc.msg}") from None
    if str(out.pop("no_tool", "")).lower() in {"1", "true", "yes"}:
        out.setdefault("tags", []).append("no_tool")
    return out


@reader(".yaml", ".yml")
def _yaml_rows(path: Path) -> Iterator[Row | tuple[int, str]]:
    try:
        root = yaml.compose(read_text(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML") from None
    if isinstance(root, yaml.MappingNode):
        root = next((v for k, v in root.value if k.value == "seeds"), None)
    if not isinstance(root, yaml.SequenceNode):
        raise UserError(f"{path}: expected a list of seeds (or a 'seeds:' list)")
    for node in root.value:
        number = node.start_mark.line + 1
        value = yaml.safe_load(yaml.serialize(node))
        yield (number, value) if isinstance(value, dict) else (number, "expected a mapping")


def import_seeds(paths: list[Path], source: str = "import", domain: str = "") -> Imported:
    """Seeds from files; `source` and `domain` fill in rows that do not say."""
    result = Imported()
    ids: set[str] = set()
    for path in paths:
        read = _READERS.get(path.suffix.lower())
        if read is None:
            raise UserError(f"{path}: unknown seed file type; use .jsonl, .csv, .yaml or .yml")
        open_input(path).close()
        for number, row in read(path):
            where = f"{path}:{number}"
            if isinstance(row, str):
                result.problems.append(f"{where}: {row}")
                continue
            row = {"source": source, "domain": domain, **row}
            row.setdefault("id", content_id(row.get("question", "")))
            try:
                seed = Seed.from_json(row)
            except ValidationError as exc:
                result.problems.append(f"{where}: {'; '.join(validation_problems(exc))}")
                continue
            if seed.id in ids:
                result.problems.append(f"{where}: duplicate id {seed.id!r}")
                continue
            ids.add(seed.id)
            result.seeds.append(seed)
    return result


def read_seeds(path: Path) -> list[Seed]:
    """The seeds of a file `fcsft seeds import` wrote; a row that is not one is a UserError."""
    seeds = []
    for number, obj in read_numbered(path):
        try:
            seeds.append(Seed.from_json(obj))
        except ValidationError as exc:
            raise UserError(
                f"{path}:{number}: not a seed: {'; '.join(validation_problems(exc))}"
            ) from None
    return seeds


def mine_logs(
    paths: list[Path],
    domain: str = "",
    threshold: float = 0.8,
    min_words: int = 3,
    pii: str = "patterns",
) -> Imported:
    """Seeds from chat logs, one a conversation: OpenAI-style `messages` or ShareGPT
    `conversations`. The first user message of at least `min_words` words is the question
    (shorter ones before it, greetings, are left out) and every user message after it a
    follow-up, whatever its length; messages the user sent with no reply between them are one
    turn. Every turn is scrubbed (`pii` names the detector, see `fcsft.text.pii`) and
    conversations that nearly repeat one already taken are dropped."""
    detector = detector_for(pii)
    result = Imported()
    index = NearDuplicates(threshold)
    for path in paths:
        for line in read_lines(path):
            where = f"{path}:{line.number}"
            if line.error:
                result.problems.append(f"{where}: {line.error}")
                continue
            said = _user_turns(line.obj)
            if said is None:
                result.problems.append(f"{where}: no 'messages' or 'conversations' list")
                continue
            while said and len(said[0].split()) < min_words:
                said.pop(0)
            if not said:
                continue
            clean: list[str] = []
            found: Counter = Counter()
            for text in said:
                scrubbed, kinds = scrub(text, detector)
                clean.append(scrubbed)
                found.update(kinds)
            # A single question keeps the id of its text alone.
            ident = content_id(clean[0] if len(clean) == 1 else clean)
            match, similarity = index.add(ident, "\n".join(clean))
            if match is not None:
                seed = Seed(
                    id=ident, question=clean[0], followups=clean[1:], source="log", domain=domain
                )
                result.near_duplicates.append(NearDuplicate(where, seed, match, similarity))
                continue
            result.scrubbed.update(found)
            result.seeds.append(
                Seed(
                    id=ident,
                    question=clean[0],
                    followups=clean[1:],
                    source="log",
                    domain=domain,
                )
            )
    return result


_USER_ROLES = {"user", "human"}
_REPLY_ROLES = {"assistant", "gpt", "function_call", "tool", "observation", "function"}


def _user_turns(log: dict[str, Any]) -> list[str] | None:
    """The user's turns of one logged conversation, or None when it holds no message list."""
    items = log.get("messages", log.get("conversations"))
    if not isinstance(items, list):
        return None
    said: list[str] = []
    replied = True
    for item in items:
        if not isinstance(item, dict):
            continue
        role = item.get("role", item.get("from"))
        text = item.get("content", item.get("value"))
        if role in _USER_ROLES and isinstance(text, str) and text.strip():
            if replied:
                said.append(text.strip())
            else:
                said[-1] += "\n" + text.strip()
            replied = False
        elif role in _REPLY_ROLES:
            replied = True
    return said
