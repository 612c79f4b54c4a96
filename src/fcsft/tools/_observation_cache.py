"""Observations of simulated tools, kept in SQLite so the same call always gets the same answer.

A simulated API that answered one question two ways would teach the student that tools are
random. The first answer for (tool, schema, arguments) is stored and every later identical
call is served from here, across runs and processes; when two calls race, the first write
wins and both callers return what was stored.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    tool TEXT NOT NULL,
    spec TEXT NOT NULL,        -- hash of the tool's declared schemas: a changed API starts afresh
    arguments TEXT NOT NULL,   -- canonical JSON
    content TEXT NOT NULL,
    PRIMARY KEY (tool, spec, arguments)
)
"""


def canonical(arguments: dict[str, Any]) -> str:
    """One spelling per value: sorted keys, no spaces, unicode as is."""
    return json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class ObservationCache:
    """A tiny key-value table; each call opens its own connection, so any thread or process may
    use it, and SQLite's locking keeps an insert and the read after it in one transaction."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(_SCHEMA)

    def get(self, tool: str, spec: str, arguments: dict[str, Any]) -> str | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT content FROM observations WHERE tool = ? AND spec = ? AND arguments = ?",
                (tool, spec, canonical(arguments)),
            ).fetchone()
        return row[0] if row else None

    def put(self, tool: str, spec: str, arguments: dict[str, Any], content: str) -> str:
        """Store `content` unless an answer is already there; return the stored answer."""
        key = (tool, spec, canonical(arguments))
        with self._connect() as db:
            db.execute("INSERT OR IGNORE INTO observations VALUES (?, ?, ?, ?)", (*key, content))
            return db.execute(
                "SELECT content FROM observations WHERE tool = ? AND spec = ? AND arguments = ?",
                key,
            ).fetchone()[0]

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and is always closed."""
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:
                yield db
        finally:
            db.close()
