"""The review's memory: the drawn sample and every human decision, in one SQLite file.

WAL mode, and one short connection per operation, so the web server's worker threads and a
concurrent `--apply` can read while a decision is written, and a killed server loses nothing
that was acknowledged. The sample is written in one transaction: a file either holds a whole
sample or none.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from fcsft.jsonl import dumps
from fcsft.records import Verdict
from fcsft.review.sample import Sample, Stratum

Decision = Literal["accepted", "rejected"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS strata (
    tool TEXT, how TEXT, source TEXT, auto TEXT,
    population INTEGER NOT NULL, sampled INTEGER NOT NULL,
    PRIMARY KEY (tool, how, source, auto)
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    position INTEGER NOT NULL UNIQUE,
    tool TEXT NOT NULL, how TEXT NOT NULL, source TEXT NOT NULL,
    auto TEXT NOT NULL CHECK (auto IN ('accepted', 'rejected')),
    reasons TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS decisions (
    item_id TEXT PRIMARY KEY REFERENCES items (id),
    decision TEXT NOT NULL CHECK (decision IN ('accepted', 'rejected')),
    reason TEXT NOT NULL DEFAULT '',
    decided_at TEXT NOT NULL
);
"""


@dataclass
class Item:
    """A sampled record with its automatic verdict and the human decision, if any yet."""

    id: str
    position: int
    stratum: Stratum
    reasons: list[Verdict]
    decision: Decision | None = None
    reason: str = ""
    record: dict[str, Any] | None = None  # left out of listings: records can be large

    @property
    def auto(self) -> str:
        return self.stratum.auto

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "stratum": self.stratum._asdict(),
            "auto": self.auto,
            "decision": self.decision,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class SampleInfo:
    fraction: float
    seed: int
    drawn_at: str
    input_hash: str


@dataclass(frozen=True)
class StratumCount:
    stratum: Stratum
    population: int
    sampled: int


class ReviewStore:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with closing(sqlite3.connect(self.path, timeout=30)) as db, db:
            db.execute("PRAGMA foreign_keys=ON")
            yield db

    # -------------------------------------------------------------- the sample

    def info(self) -> SampleInfo | None:
        """How the stored sample was drawn; None while no sample is stored."""
        with self._connect() as db:
            rows = dict(db.execute("SELECT key, value FROM info").fetchall())
        if "drawn_at" not in rows:
            return None
        return SampleInfo(
            float(rows["fraction"]), int(rows["seed"]), rows["drawn_at"], rows["input_hash"]
        )

    def save_sample(self, sample: Sample, input_hash: str) -> None:
        with self._connect() as db:
            if db.execute("SELECT 1 FROM info WHERE key = 'drawn_at'").fetchone():
                raise RuntimeError(f"{self.path} already holds a sample")
            sampled = sample.sampled()
            db.executemany(
                "INSERT INTO strata VALUES (?, ?, ?, ?, ?, ?)",
                [(*s, n, sampled[s]) for s, n in sorted(sample.population.items())],
            )
            db.executemany(
                "INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        item.id,
                        position,
                        *item.stratum[:3],
                        item.auto,
                        dumps([verdict.to_json() for verdict in item.reasons]),
                        dumps(item.record),
                    )
                    for position, item in enumerate(sample.items, start=1)
                ],
            )
            info = {
                "fraction": repr(sample.fraction),
                "seed": str(sample.seed),
                "input_hash": input_hash,
                "drawn_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            db.executemany("INSERT INTO info VALUES (?, ?)", list(info.items()))

    def strata(self) -> list[StratumCount]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT tool, how, source, auto, population, sampled FROM strata "
                "ORDER BY tool, how, source, auto"
            ).fetchall()
        return [StratumCount(Stratum(*row[:4]), row[4], row[5]) for row in rows]

    # ----------------------------------------------------------- items and decisions

    _ITEM_SQL = (
        "SELECT i.id, i.position, i.tool, i.how, i.source, i.auto, i.reasons, "
        "d.decision, d.reason{record} FROM items i LEFT JOIN decisions d ON d.item_id = i.id"
    )

    def items(self) -> list[Item]:
        """Every sampled item in review order, without its record."""
        with self._connect() as db:
            rows = db.execute(self._ITEM_SQL.format(record="") + " ORDER BY i.position")
            return [self._item(row) for row in rows.fetchall()]

    def item(self, ident: str) -> Item | None:
        with self._connect() as db:
            row = db.execute(
                self._ITEM_SQL.format(record=", i.record") + " WHERE i.id = ?", (ident,)
            ).fetchone()
        return self._item(row) if row else None

    @staticmethod
    def _item(row: tuple) -> Item:
        reasons = [Verdict.from_json(verdict) for verdict in json.loads(row[6])]
        return Item(
            id=row[0],
            position=row[1],
            stratum=Stratum(*row[2:6]),
            reasons=reasons,
            decision=row[7],
            reason=row[8] or "",
            record=json.loads(row[9]) if len(row) > 9 else None,
        )

    def decide(self, ident: str, decision: Decision, reason: str = "") -> Item:
        """Record (or change) the human decision on one item; KeyError if it is not sampled."""
        if decision not in ("accepted", "rejected"):
            raise ValueError(f"decision must be accepted or rejected, got {decision!r}")
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            if not db.execute("SELECT 1 FROM items WHERE id = ?", (ident,)).fetchone():
                raise KeyError(ident)
            db.execute(
                "INSERT INTO decisions VALUES (?, ?, ?, ?) ON CONFLICT (item_id) DO UPDATE "
                "SET decision = excluded.decision, reason = excluded.reason, "
                "decided_at = excluded.decided_at",
                (ident, decision, reason.strip(), now),
            )
        item = self.item(ident)
        assert item is not None
        return item

    def undecide(self, ident: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM decisions WHERE item_id = ?", (ident,))

    def progress(self) -> tuple[int, int]:
        """(items decided, items sampled)."""
        with self._connect() as db:
            decided = db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0]
            total = db.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        return decided, total
