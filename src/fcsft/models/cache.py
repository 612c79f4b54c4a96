"""The response cache: every answered request, in SQLite, so a re-run costs nothing.

Why this shape:

- One row per request hash, in a plain rowid table (WITHOUT ROWID wrote half as fast with
  replies of a few hundred bytes and more). `INSERT OR IGNORE` makes a second writer of the
  same key harmless, so several processes (a Ray shard each, or a stage re-run beside
  another) share one file.
- WAL journal: readers never wait for writers and writers commit without blocking readers.
  `busy_timeout` makes a writer wait for another process's transaction instead of failing.
- Lookups run on the caller's thread (a primary-key read takes microseconds), but writes go to
  one background thread that gathers them for a quarter of a second and commits them as one
  transaction: a commit per reply, on the event loop, costs more than the HTTP request it
  saves, and keys are hashes, so every commit rewrites index pages all over the file; the
  bigger the batch, the fewer times each page is written. Until its batch is committed a
  reply is served from memory, so a process always reads its own writes; `flush()` or
  `close()` makes them durable (a crash loses at most the last quarter second).
- What is stored is the reply alone (message, token counts, finish reason). Requests carry no
  credentials and neither do replies, so the API key can never reach this file.
"""

from __future__ import annotations

import atexit
import json
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from fcsft.models.base import ChatResponse

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_BATCH = 1024  # rows per transaction at most
_LINGER_S = 0.25  # how long the writer lets replies gather before it commits them
_JSON = json.JSONEncoder(ensure_ascii=False)  # built once: json.dumps builds one per call
_Row = tuple[str, str, float]  # key, encoded reply, when it was stored
_BUSY_TIMEOUT_S = 60.0  # another process may hold the write lock for a batch; wait for it


def encode_response(response: ChatResponse) -> str:
    """The stored form of a reply: everything but `cached`, which is about the lookup."""
    return _JSON.encode(
        {
            "message": response.message,
            "prompt_tokens": response.prompt_tokens,
            "completion_tokens": response.completion_tokens,
            "finish_reason": response.finish_reason,
            "latency_s": response.latency_s,
            "extra": response.extra,
        }
    )


def decode_response(blob: str) -> ChatResponse:
    """A fresh ChatResponse from its stored form; callers may change it without harm."""
    return ChatResponse(**json.loads(blob))


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    # Turning WAL on can fail at once with "database is locked" while another process opens
    # the same new file (busy_timeout does not cover it), so that one statement is retried.
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode = WAL")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    # With WAL, NORMAL stays consistent after a crash and skips a disk sync per commit.
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


class ResponseCache:
    """Replies by request hash, in one SQLite file shared by every process that opens it.

    Open one per file per process and share it: once written to, each holds a writer thread
    until `close()` (or the end of the process, which closes it).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._reader = _connect(self.path)
        self._reader.execute(_SCHEMA)
        self._read_lock = threading.Lock()
        self._pending: dict[str, str] = {}  # written but not yet committed
        self._queue: queue.SimpleQueue[_Row | threading.Event | None] = queue.SimpleQueue()
        self._urgent = threading.Event()  # someone waits for the commit: do not linger
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._closed = False

    def get(self, key: str) -> ChatResponse | None:
        """The stored reply for `key`, or None."""
        blob = self.get_encoded(key)
        return None if blob is None else decode_response(blob)

    def get_encoded(self, key: str) -> str | None:
        """The stored reply for `key` in its `encode_response` form, or None."""
        blob = self._pending.get(key)
        if blob is not None:
            return blob
        with self._read_lock:
            row = self._reader.execute(
                "SELECT response FROM responses WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else row[0]

    def put(self, key: str, response: ChatResponse) -> None:
        """Store a reply; it is readable at once here and durable after the next commit."""
        self.put_encoded(key, encode_response(response))

    def put_encoded(self, key: str, blob: str) -> None:
        """Store a reply already in its `encode_response` form."""
        if self._closed:
            raise RuntimeError(f"response cache {self.path} is closed")
        self._raise_writer_error()
        self._pending[key] = blob
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_batches, name="fcsft-cache-writer", daemon=True
            )
            self._writer.start()
            # A daemon thread dies with the interpreter; whoever forgot close() keeps the replies.
            atexit.register(self.close)
        self._queue.put((key, blob, time.time()))

    def flush(self) -> None:
        """Block until every reply put so far is committed to the file."""
        if self._writer is None:
            return
        done = threading.Event()
        self._queue.put(done)
        self._urgent.set()
        while not done.wait(timeout=0.5):
            if not self._writer.is_alive():
                break
        self._raise_writer_error()

    def close(self) -> None:
        """Commit what is pending, stop the writer thread and close the file."""
        if self._closed:
            return
        self.flush()
        self._closed = True
        if self._writer is not None:
            self._queue.put(None)
            self._urgent.set()
            self._writer.join()
            atexit.unregister(self.close)
        with self._read_lock:
            self._reader.close()

    def __len__(self) -> int:
        with self._read_lock:
            return self._reader.execute("SELECT count(*) FROM responses").fetchone()[0]

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise RuntimeError(f"response cache {self.path}: writes failed") from self._writer_error

    def _write_batches(self) -> None:
        """The writer thread: wait for work, let a batch gather, commit it, repeat."""
        connection = _connect(self.path)
        try:
            stop = False
            while not stop:
                items = [self._queue.get()]
                self._urgent.wait(_LINGER_S)  # cut short by flush() and close()
                self._urgent.clear()
                while True:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                rows = [item for item in items if isinstance(item, tuple)]
                for start in range(0, len(rows), _BATCH):
                    self._commit(connection, rows[start : start + _BATCH])
                for item in items:
                    if isinstance(item, threading.Event):
                        item.set()
                stop = None in items
        except BaseException as exc:  # reported to the next put/flush on the caller's thread
            self._writer_error = exc
            raise
        finally:
            connection.close()

    def _commit(self, connection: sqlite3.Connection, rows: list[_Row]) -> None:
        connection.execute("BEGIN IMMEDIATE")
        try:
            connection.executemany(
                "INSERT OR IGNORE INTO responses (key, response, created) VALUES (?, ?, ?)", rows
            )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        for key, _, _ in rows:
            self._pending.pop(key, None)
