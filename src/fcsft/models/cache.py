"""The response cache: every answered request, in SQLite, so a re-run costs nothing.

Why this shape:

- One row per request, appended to a plain rowid table and found through a unique index on
  a 64-bit hash of its key; the key itself is stored beside it and compared on every hit.
  An index of the 64-character keys themselves would be five times bigger, with most of its
  pages rewritten by every batch; keying the table itself by the hash (or WITHOUT ROWID) would
  move a whole reply inside the tree on each insert. `INSERT OR IGNORE` makes a second writer
  of the same key harmless, so several processes (a Ray shard each, or a stage re-run beside
  another) share one file. (Two keys with one hash, about one chance in 4 billion at 100k
  replies: the second is never stored and is asked of the model each time, never answered
  wrongly.)
- WAL journal: readers never wait for writers and writers commit without blocking readers.
  `busy_timeout` makes a writer wait for another process's transaction instead of failing.
- Lookups run on the caller's thread. A query costs tens of microseconds between other work
  (two file locks and a page read), the client's largest cost at hundreds of requests in
  flight, so once misses have cost about what reading the file's keys would, the cache reads
  their hashes (from the index, 8 bytes a key) and from then on answers a miss from memory,
  learning the rows added since at most every quarter second. A re-run that finds everything
  never reads them. (Keys are looked up one request at a time, not gathered into one query
  for many, which would make the event loop start requests in bursts.) A key another
  process stored in the last quarter second may be missed: that request is sent again, as
  when two processes ask at the same moment.
- Writes go to one background thread that gathers them for a quarter of a second and commits
  them as one transaction: a commit per reply, on the event loop, costs more than the HTTP
  request it saves, and keys are hashes, so every commit rewrites index pages all over the
  file; the bigger the batch, the fewer times each page is written. Until its batch is
  committed a reply is served from memory, so a process always reads its own writes;
  `flush()` or `close()` makes them durable (a crash loses at most the last quarter second).
- A file that is not a cache (garbage, half a file, another program's database) is set aside
  as `NAME.corrupt-<time>`, with a warning, and an empty cache takes its place: the run goes
  on and asks again what it cannot read. A row whose reply does not decode is a miss, and the
  new reply replaces it.
- A process that may not open the file (a Ray worker on another machine) uses a
  `CarriedReplies` instead: the process that owns the file sends each input with the replies
  it used last time (`replies_of`, a list of keys per input in a table of its own, written by
  `note_replies`), and the worker hands back the keys the input used and the replies it got.
  So an input processed again (retried, or the stage re-run) is answered from the file as it
  would be in one process. The table is made the first time such a list is written.
- What is stored is the reply alone: the chat-completion JSON exactly as an OpenAI-compatible
  server sent it (so the event loop never encodes a reply a second time), or for a reply made
  in this process its message, token counts, finish reason and extras. Requests carry no
  credentials and neither do replies, so the API key can never reach this file.
"""

from __future__ import annotations

import atexit
import collections
import contextvars
import functools
import hashlib
import json
import logging
import queue
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcsft.models.base import ChatResponse, completion_reply

log = logging.getLogger(__name__)

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS replies (
        hash INTEGER NOT NULL, key TEXT NOT NULL, response TEXT NOT NULL, created REAL NOT NULL
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS replies_by_hash ON replies (hash)",
)
# A file of the earlier layout has a table `responses` keyed by the key itself; opening it
# moves its rows into `replies`.
_OLD_TABLE = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'responses'"
_MIGRATE = (
    """INSERT OR IGNORE INTO replies (hash, key, response, created)
    SELECT fcsft_key_hash(key), key, response, created FROM responses""",
    "DROP TABLE responses",
)
_SELECT = "SELECT key, response FROM replies WHERE hash = ?"
# The reply keys each input used (`note_replies`), by key_hash of its scope; made when first
# written, so a file no worker wrote to has only `replies`.
_USES_TABLE = "CREATE TABLE IF NOT EXISTS uses (scope INTEGER PRIMARY KEY, keys TEXT NOT NULL)"
_SET_USES = "INSERT OR REPLACE INTO uses (scope, keys) VALUES (?, ?)"
_GET_USES = "SELECT keys FROM uses WHERE scope = ?"
_NEW_HASHES = "SELECT rowid, hash FROM replies WHERE rowid > ? AND rowid <= ?"  # rowids only grow
_LAST_ROWID = 2**63 - 1
_ALL_HASHES = "SELECT hash FROM replies"  # read from the index alone
_ROWS = "SELECT max(rowid) FROM replies"
# A batch goes in as multi-row INSERTs of up to _ROWS_PER_INSERT rows: the sqlite3 module binds
# a statement's parameters in one call and steps it once, so the writer gives up the GIL once
# a statement, not once a row as executemany does. (A batch encoded as one JSON array and read
# back by json_each would escape every stored reply a second time.) At most 128 rows (512
# parameters) a statement stays inside any SQLite's parameter limit; a batch uses at most two
# sizes (full chunks and the rest), whose text is built once and whose prepared statements the
# module's statement cache keeps.
_ROWS_PER_INSERT = 128
_KEYS_PER_QUERY = 32  # a lookup query costs about as much as reading 32 keys into memory
_REFRESH_S = 0.25  # how old this process's list of the keys other processes stored may get
_BATCH = 1024  # rows per transaction at most
_LINGER_S = 0.25  # how long the writer lets replies gather before it commits them
_WRITER_CACHE_KIB = 64 * 1024  # the writer's page cache, at most (used as pages are touched)
_CHECKPOINT_PAGES = 4000  # WAL pages before a checkpoint (SQLite's default: 1000)
_JSON = json.JSONEncoder(ensure_ascii=False)  # built once: json.dumps builds one per call
_Row = tuple[int, str, str, float]  # key_hash(key), key, encoded reply, when it was stored
_Uses = tuple[int, str]  # key_hash(scope), its reply keys as a JSON list
_SIGNED_64 = struct.Struct(">q").unpack  # int.from_bytes(b, "big", signed=True), parsed once
_BUSY_TIMEOUT_S = 60.0  # another process may hold the write lock for a batch; wait for it


@functools.cache
def _insert(rows: int) -> str:
    """The INSERT of `rows` rows, as `_commit` binds them (built once for each size)."""
    return "INSERT OR IGNORE INTO replies (hash, key, response, created) VALUES " + ",".join(
        ["(?, ?, ?, ?)"] * rows
    )


def key_hash(key: str) -> int:
    """The key's 64-bit hash, as SQLite stores an integer (signed)."""
    return _SIGNED_64(hashlib.blake2b(key.encode(), digest_size=8).digest())[0]


def encode_response(response: ChatResponse) -> str:
    """The stored form of a reply: the chat-completion JSON its server sent, as it came, else
    (a reply made in this process) everything but `cached`, which is about the lookup."""
    if response.body is not None:
        return response.body
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


_SHAPE = "SELECT hash, key, response, created FROM replies LIMIT 0"  # the columns this reads
_DELETE = "DELETE FROM replies WHERE hash = ?"
_BROKEN = ("SQLITE_NOTADB", "SQLITE_CORRUPT")  # error names that mean the file is not usable
_TABLES = {"replies", "responses", "uses"}


def _not_a_cache(path: Path) -> str | None:
    """Why the file at `path` is not a response cache, from a read-only look (another
    program's database is not changed); None for a cache or no file. A damaged file raises."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    look = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {
            name
            for (name,) in look.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        }
        if tables - _TABLES:
            return f"holds other tables: {', '.join(sorted(tables - _TABLES))}"
        if "replies" in tables:
            look.execute(_SHAPE)
    except sqlite3.OperationalError as exc:
        if not _broken(exc):
            return None  # cannot look without writing (busy, say): the cache's own open will
        raise
    finally:
        look.close()
    return None


def _broken(exc: sqlite3.Error) -> bool:
    """Whether an error says the file is damaged or not a cache (rather than busy, say)."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name.startswith(_BROKEN):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "no such column" in str(exc)


def decode_response(blob: str) -> ChatResponse:
    """A fresh ChatResponse from either stored form; callers may change it without harm."""
    data = json.loads(blob)
    if "choices" in data:
        return completion_reply(data)
    return ChatResponse(**data)


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
                connection.close()
                raise
            time.sleep(0.01)
        except sqlite3.DatabaseError:
            connection.close()
            raise
    # With WAL, NORMAL stays consistent after a crash and skips a disk sync per commit.
    connection.execute("PRAGMA synchronous = NORMAL")
    return connection


@contextmanager
def _writing(connection: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, holding the file's write lock from its start; rolled back if the
    block raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


def _prepare(connection: sqlite3.Connection) -> None:
    """Create the table and its index, moving an older file's replies into them."""
    with _writing(connection):  # one process creates or migrates; the others then see it done
        for statement in _SCHEMA:
            connection.execute(statement)
        if connection.execute(_OLD_TABLE).fetchone():
            connection.create_function("fcsft_key_hash", 1, key_hash, deterministic=True)
            for statement in _MIGRATE:
                connection.execute(statement)


class ResponseCache:
    """Replies by request hash, in one SQLite file shared by every process that opens it.

    Open one per file per process and share it: once written to, each holds a writer thread
    until `close()` (or the end of the process, which closes it).
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.set_aside: Path | None = None  # where an unusable file found here was moved
        self._reader = self._open()
        self._read_lock = threading.Lock()
        # key_hash of every key in the file as of `_known_at`, once the misses answered by
        # queries have cost as much as reading them (see `_missed`).
        self._known: set[int] | None = None
        self._known_rowid = 0
        # Rowids (after, through] of each batch this process's writer committed while `_known`
        # was kept: their keys are known already, so `_learn_new_keys` need not read them back.
        self._own_rows: collections.deque[tuple[int, int]] = collections.deque()
        self._known_at = 0.0
        self._misses = 0
        self._file_rows: int | None = None  # rows in the file at the first miss
        self._pending: dict[str, str] = {}  # written but not yet committed
        self._pending_uses: dict[int, str] = {}  # note_replies not yet committed, by scope hash
        self._queue: queue.SimpleQueue[_Row | _Uses | threading.Event | None] = queue.SimpleQueue()
        self._urgent = threading.Event()  # someone waits for the commit: do not linger
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None
        self._replace: set[int] = set()  # hashes of rows that did not decode: overwrite them
        self._closed = False

    def _open(self) -> sqlite3.Connection:
        """The reader's connection, to a cache file; an unusable file is set aside first."""
        for _ in range(3):  # another process may be setting the same file aside
            inode = self.path.stat().st_ino if self.path.exists() else None
            try:
                problem = _not_a_cache(self.path)
                if problem is None:
                    connection = _connect(self.path)
                    try:
                        _prepare(connection)
                    except BaseException:
                        connection.close()
                        raise
                    return connection
            except sqlite3.DatabaseError as exc:
                if not _broken(exc):
                    raise
                problem = str(exc)
            self._move_aside(inode, problem)
        raise RuntimeError(f"response cache {self.path}: cannot open a usable file")

    def _move_aside(self, inode: int | None, problem: str) -> None:
        """Rename the file (and its WAL files) to NAME.corrupt-<time>, unless someone did."""
        try:
            if inode is None or self.path.stat().st_ino != inode:
                return  # gone or replaced meanwhile: open whatever is there now
        except FileNotFoundError:
            return
        stamp = time.strftime("%Y%m%d-%H%M%S")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        number = 1
        while target.exists():
            number += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{number}")
        self.path.rename(target)
        for suffix in ("-wal", "-shm"):
            side = self.path.with_name(self.path.name + suffix)
            if side.exists():
                side.rename(target.with_name(target.name + suffix))
        self.set_aside = target
        log.warning(
            "%s is not a usable response cache (%s); set aside as %s, starting an empty one",
            self.path,
            problem,
            target.name,
        )

    def get(self, key: str) -> ChatResponse | None:
        """The stored reply for `key`, or None; a stored reply that does not decode is a miss,
        and the next `put` of the key replaces it."""
        blob = self.get_encoded(key)
        if blob is None:
            return None
        try:
            return decode_response(blob)
        except (ValueError, TypeError, KeyError) as exc:
            log.debug("response cache %s: unreadable reply for %s (%s)", self.path, key, exc)
            self._replace.add(key_hash(key))
            return None

    def get_encoded(self, key: str) -> str | None:
        """The stored reply for `key` in its `encode_response` form, or None."""
        blob = self._pending.get(key)
        if blob is not None:
            return blob
        hashed = key_hash(key)
        if self._known is not None:
            if time.monotonic() - self._known_at > _REFRESH_S:
                self._learn_new_keys()
            if hashed not in self._known:
                return None
        try:
            with self._read_lock:
                row = self._reader.execute(_SELECT, (hashed,)).fetchone()
        except sqlite3.DatabaseError as exc:
            if not _broken(exc):
                raise
            return None  # a damaged page: ask again, as for any miss
        if row is not None and row[0] == key:
            return row[1]
        if self._known is None:
            self._missed()
        return None

    def put(self, key: str, response: ChatResponse) -> None:
        """Store a reply; it is readable at once here and durable after the next commit."""
        self.put_encoded(key, encode_response(response))

    def put_encoded(self, key: str, blob: str) -> None:
        """Store a reply already in its `encode_response` form."""
        self._writable()
        self._pending[key] = blob
        hashed = key_hash(key)
        if self._known is not None:
            self._known.add(hashed)
        self._write((hashed, key, blob, time.time()))

    def note_replies(self, scope: str, keys: list[str]) -> None:
        """Record the reply keys the input `scope` used (see `replies_of`), in place of any
        list recorded for it before."""
        self._writable()
        hashed, blob = key_hash(scope), _JSON.encode(keys)
        self._pending_uses[hashed] = blob
        self._write((hashed, blob))

    def replies_of(self, scope: str) -> dict[str, str]:
        """The stored replies, by key, that the input `scope` used when it was last processed
        (`note_replies`), in their `encode_response` form: those still in the file."""
        hashed = key_hash(scope)
        blob = self._pending_uses.get(hashed)
        if blob is None:
            try:
                with self._read_lock:
                    row = self._reader.execute(_GET_USES, (hashed,)).fetchone()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return {}
                raise
            if row is None:
                return {}
            blob = row[0]
        found = {key: self.get_encoded(key) for key in json.loads(blob)}
        return {key: reply for key, reply in found.items() if reply is not None}

    def _writable(self) -> None:
        if self._closed:
            raise RuntimeError(f"response cache {self.path} is closed")
        self._raise_writer_error()

    def _write(self, item: _Row | _Uses) -> None:
        """Hand a row to the writer thread, starting it the first time."""
        if self._writer is None:
            self._writer = threading.Thread(
                target=self._write_batches, name="fcsft-cache-writer", daemon=True
            )
            self._writer.start()
            # A daemon thread dies with the interpreter; whoever forgot close() keeps the replies.
            atexit.register(self.close)
        self._queue.put(item)

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
            return self._reader.execute("SELECT count(*) FROM replies").fetchone()[0]

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def _missed(self) -> None:
        """Count a miss answered by a query. Once the misses have cost about what reading the
        file's keys costs (a query as much as 32 keys read), read them: a run of misses then
        costs at most twice the better choice, and a re-run that finds everything never reads
        them (ski rental)."""
        self._misses += 1
        if self._file_rows is None:
            with self._read_lock:
                self._file_rows = self._reader.execute(_ROWS).fetchone()[0] or 0
        if self._misses * _KEYS_PER_QUERY < self._file_rows:
            return
        started = time.monotonic()
        uncommitted = list(self._pending)  # before the file: a key leaves this after its commit
        with self._read_lock:
            self._reader.execute("BEGIN")  # the keys and their last rowid from one snapshot
            try:
                last = self._reader.execute(_ROWS).fetchone()[0] or 0
                hashes = self._reader.execute(_ALL_HASHES).fetchall()
            finally:
                self._reader.execute("COMMIT")
        self._known = {hashed for (hashed,) in hashes} | {key_hash(key) for key in uncommitted}
        self._known_rowid, self._known_at = last, started

    def _learn_new_keys(self) -> None:
        """Add the keys other processes stored since the last look. The rows of this process's
        own batches are skipped, not read back: their keys are known, and reading them would
        read whole rows, replies and all, from the log."""
        assert self._known is not None
        started = time.monotonic()
        unread, seen = [], self._known_rowid  # rowid ranges (after, through] still to read
        while self._own_rows:
            after, through = self._own_rows.popleft()
            if after > seen:  # another process committed between: read its rows
                unread.append((seen, after))
            seen = max(seen, through)
        unread.append((seen, _LAST_ROWID))  # and whatever came after
        with self._read_lock:
            for after, through in unread:
                rows = self._reader.execute(_NEW_HASHES, (after, through)).fetchall()
                self._known.update(hashed for _, hashed in rows)
                seen = max(seen, max((rowid for rowid, _ in rows), default=0))
        self._known_rowid, self._known_at = seen, started

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise RuntimeError(f"response cache {self.path}: writes failed") from self._writer_error

    def _write_batches(self) -> None:
        """The writer thread: wait for work, let a batch gather, commit it, repeat."""
        connection = _connect(self.path)
        # Keys are hashes, so a batch dirties index pages all over the file. A page cache that
        # holds the index, and checkpoints every 16 MB of WAL instead of 4, copy each such page
        # to the database file once for many batches instead of once a batch.
        connection.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
        connection.execute(f"PRAGMA wal_autocheckpoint = {_CHECKPOINT_PAGES}")
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
                rows = [item for item in items if isinstance(item, tuple) and len(item) == 4]
                uses = [item for item in items if isinstance(item, tuple) and len(item) == 2]
                for start in range(0, len(rows), _BATCH):
                    self._commit(connection, rows[start : start + _BATCH])  # type: ignore[arg-type]
                if uses:
                    self._commit_uses(connection, uses)  # type: ignore[arg-type]
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
        replaced = [(row[0],) for row in rows if row[0] in self._replace]
        with _writing(connection):  # holds the write lock: the new rowids are all this batch's
            if replaced:
                connection.executemany(_DELETE, replaced)
            after = connection.execute(_ROWS).fetchone()[0] or 0
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                connection.execute(_insert(len(chunk)), [value for row in chunk for value in row])
            through = connection.execute(_ROWS).fetchone()[0] or 0
        self._replace.difference_update(hashed for (hashed,) in replaced)
        if self._known is not None and through > after:
            self._own_rows.append((after, through))
        for _, key, _, _ in rows:
            self._pending.pop(key, None)

    def _commit_uses(self, connection: sqlite3.Connection, uses: list[_Uses]) -> None:
        with _writing(connection):
            connection.execute(_USES_TABLE)
            connection.executemany(_SET_USES, uses)  # in order: the last list for a scope wins
        for hashed, blob in uses:
            if self._pending_uses.get(hashed) is blob:  # unless a newer one came meanwhile
                del self._pending_uses[hashed]


@dataclass
class Carried:
    """One input's replies in a `CarriedReplies`: those it came with, those it got from the
    model, and the keys of all it used, in the order it first used them."""

    given: dict[str, str]
    made: dict[str, str] = field(default_factory=dict)
    used: dict[str, None] = field(default_factory=dict)


class CarriedReplies:
    """The response cache of a process that may not open the run's file (a Ray worker).

    Each input is processed inside `carrying(given)`, `given` being the replies the process
    owning the file sent with it (`ResponseCache.replies_of`); a lookup there finds those and
    the replies the same input got so far, and nothing else, so memory holds only the inputs in
    flight. What an input used and got (`Carried`) goes back with its outcomes. A reply asked
    outside any input is not kept.
    """

    def __init__(self) -> None:
        self._current: contextvars.ContextVar[Carried | None] = contextvars.ContextVar(
            "fcsft_carried", default=None
        )

    @contextmanager
    def carrying(self, given: dict[str, str]) -> Iterator[Carried]:
        """The lookups and stores of this context (and the tasks and threads it starts) are
        the input's."""
        carried = Carried(given)
        token = self._current.set(carried)
        try:
            yield carried
        finally:
            self._current.reset(token)

    def get(self, key: str) -> ChatResponse | None:
        """As `ResponseCache.get`: a reply that does not decode is a miss."""
        blob = self.get_encoded(key)
        if blob is None:
            return None
        try:
            return decode_response(blob)
        except (ValueError, TypeError, KeyError):
            return None

    def get_encoded(self, key: str) -> str | None:
        carried = self._current.get()
        if carried is None:
            return None
        blob = carried.made.get(key) or carried.given.get(key)
        if blob is not None:
            carried.used[key] = None
        return blob

    def put(self, key: str, response: ChatResponse) -> None:
        self.put_encoded(key, encode_response(response))

    def put_encoded(self, key: str, blob: str) -> None:
        carried = self._current.get()
        if carried is not None:
            carried.made[key] = blob
            carried.used[key] = None

    def flush(self) -> None:
        """Nothing to write: replies leave with the outcomes."""

    def close(self) -> None:
        """Nothing to close."""
