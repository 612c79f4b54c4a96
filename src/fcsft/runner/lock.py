"""One process at a time in a run directory.

Two processes appending to one stage's files would write every record twice and pay for every
request twice. So whatever writes a run directory (`fcsft run` and the per-stage commands, a
stage run on its own, `fcsft review --apply`) holds an exclusive `flock` on `RUN_DIR/_lock`
while it works there, and a second process stops at once with one line naming the holder.

The kernel releases the lock when the holding process ends, however it ends (SIGKILL
included), so a crashed run never leaves its directory locked and resuming needs nothing
deleted. The file itself only says who holds it (pid, command, start time); a stale one is
overwritten by the next holder. The lock is per process and re-entrant: a run holds it for all
its stages, and each stage taking it again goes straight through.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fcsft.errors import UserError

LOCK_FILE = "_lock"

_held: dict[Path, list[int]] = {}  # resolved run dir -> [file descriptor, depth]
_guard = threading.Lock()


@contextmanager
def run_dir_lock(run_dir: Path | str) -> Iterator[None]:
    """Hold `run_dir` for this process; a UserError naming the holder if another has it."""
    key = Path(run_dir).resolve()
    with _guard:
        entry = _held.get(key)
        if entry is None:
            _held[key] = [_acquire(key), 1]
        else:
            entry[1] += 1
    try:
        yield
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                os.close(entry[0])  # closing the file releases the lock


def _acquire(run_dir: Path) -> int:
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise UserError(
            f"{run_dir} is in use by {holder}; one process at a time may write a run "
            "directory: wait for that one to finish, or stop it and run again to resume"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    note = json.dumps({"pid": os.getpid(), "command": command, "started": started})
    os.ftruncate(fd, 0)
    os.pwrite(fd, (note + "\n").encode(), 0)
    return fd


def _holder(fd: int) -> str:
    """Who holds the lock, as its file says (the holder writes it just after locking)."""
    try:
        note = json.loads(os.pread(fd, 4096, 0))
        return f"pid {note['pid']} ({note['command']}, started {note['started']})"
    except (OSError, ValueError, TypeError, KeyError):
        return "another process"
