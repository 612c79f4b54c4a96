"""The stratified spot-check sample: which validated trajectories a person looks at.

A stratum is (first tool used, how the task was made, where its seed came from, what the
automatic tiers decided). Every stratum gets its share of the sample, rounded half up, and at
least one item, so a rare tool or a rare rejection reason is never left unseen.

Which items of a stratum are drawn depends only on the seed and the record ids (the smallest
`sha256(seed, id)` win), not on file order: the same run and seed always give the same sample,
and a record added later does not reshuffle the rest.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal, NamedTuple

from fcsft.errors import UserError
from fcsft.formats import FormatError, get_format
from fcsft.jsonl import read_jsonl, record_id
from fcsft.records import Verdict

Auto = Literal["accepted", "rejected"]
NO_TOOL = "none"
UNPARSABLE = "unparsable"  # the first tool of a record the openai parser refused is unknown
UNKNOWN = "unknown"


class Stratum(NamedTuple):
    tool: str
    how: str
    source: str
    auto: str

    def label(self) -> str:
        return " / ".join(self)


@dataclass
class Candidate:
    """One validated record as the sample sees it: its automatic verdict and its stratum."""

    id: str
    record: dict[str, Any]
    auto: Auto
    stratum: Stratum
    reasons: list[Verdict] = field(default_factory=list)


def stratum_of(record: dict[str, Any], auto: Auto) -> Stratum:
    meta = record.get("meta") if isinstance(record.get("meta"), dict) else {}
    how = meta.get("how") or UNKNOWN
    source = meta.get("source") or UNKNOWN
    try:
        calls = get_format("openai").parse(record).calls
    except FormatError:
        return Stratum(UNPARSABLE, str(how), str(source), auto)
    return Stratum(calls[0].name if calls else NO_TOOL, str(how), str(source), auto)


def candidates(validate_dir: Path) -> Iterator[Candidate]:
    """Every record the validate stage decided on: out.jsonl, then rejected.jsonl's records."""
    accepted, rejected = validate_dir / "out.jsonl", validate_dir / "rejected.jsonl"
    if not accepted.exists():
        raise UserError(f"{accepted}: no such file; run the validate stage first")
    for obj in read_jsonl(accepted):
        ident = record_id(obj)
        if ident is None:
            raise UserError(f"{accepted}: a record has no string meta.id")
        yield Candidate(ident, obj, "accepted", stratum_of(obj, "accepted"))
    if not rejected.exists():
        return
    for row in read_jsonl(rejected):
        record = row.get("record")
        if not isinstance(record, dict):  # a stage may reject without keeping a record
            continue
        reasons = [Verdict.from_json(verdict) for verdict in row.get("reasons", [])]
        yield Candidate(row["id"], record, "rejected", stratum_of(record, "rejected"), reasons)


def sample_size(population: int, fraction: float) -> int:
    """`fraction` of a stratum rounded half up (exactly: 10% of 15 is 2, of 14 is 1), at least 1."""
    if population == 0:
        return 0
    share = Fraction(str(fraction)) * population
    return min(population, max(1, math.floor(share + Fraction(1, 2))))


def draw_key(seed: int, ident: str) -> str:
    return hashlib.sha256(f"{seed}\0{ident}".encode()).hexdigest()


@dataclass
class Sample:
    """The drawn items in review order (by draw key, so strata are mixed), and stratum sizes."""

    items: list[Candidate]
    population: Counter[Stratum]
    fraction: float
    seed: int

    def sampled(self) -> Counter[Stratum]:
        return Counter(item.stratum for item in self.items)


def draw(validate_dir: Path, fraction: float = 0.1, seed: int = 0) -> Sample:
    """Draw the sample in two passes, so only the chosen records are ever held in memory."""
    if not 0 < fraction <= 1:
        raise UserError(f"review fraction must be in (0, 1], got {fraction}")
    keys: dict[Stratum, list[tuple[str, str]]] = {}
    for candidate in candidates(validate_dir):
        keys.setdefault(candidate.stratum, []).append((draw_key(seed, candidate.id), candidate.id))
    chosen: dict[str, str] = {}
    for stratum_keys in keys.values():
        stratum_keys.sort()
        for key, ident in stratum_keys[: sample_size(len(stratum_keys), fraction)]:
            chosen[ident] = key
    items = [candidate for candidate in candidates(validate_dir) if candidate.id in chosen]
    items.sort(key=lambda candidate: chosen[candidate.id])
    population = Counter({stratum: len(ids) for stratum, ids in keys.items()})
    return Sample(items, population, fraction, seed)
