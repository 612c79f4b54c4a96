"""A throwaway cgroup per sandboxed run, when this machine lets us make one.

Per-process limits do not bound a process tree: 32 processes with 512 MiB each is 16 GiB. A
cgroup bounds the tree's memory and process count as a whole, and the kernel's OOM killer
acts inside it before the machine runs short. The group is made under the cgroup fcsft itself
runs in, so whatever limits apply to fcsft still apply on top. Where cgroups are not writable
(no root, a read-only /sys) the sandbox runs with per-process limits only and says so.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from pathlib import Path

_ROOT = Path("/sys/fs/cgroup")


class RunCgroup:
    """One run's cgroup directories (one per v1 controller, or one for v2)."""

    def __init__(self, folders: list[Path], version: int):
        self.folders = folders
        self.version = version

    @classmethod
    def create(cls, memory_bytes: int, processes: int) -> RunCgroup | None:
        """A new group limited to `memory_bytes` and `processes`, or None if none can be made."""
        name = f"fcsft-sandbox-{uuid.uuid4().hex[:12]}"
        own = _own_groups()
        if "" in own and (_ROOT / "cgroup.controllers").exists():
            return cls._create_v2(_ROOT / own[""].lstrip("/") / name, memory_bytes, processes)
        if "memory" in own and "pids" in own:
            return cls._create_v1(
                _ROOT / "memory" / own["memory"].lstrip("/") / name,
                _ROOT / "pids" / own["pids"].lstrip("/") / name,
                memory_bytes,
                processes,
            )
        return None

    @classmethod
    def _create_v1(
        cls, memory: Path, pids: Path, memory_bytes: int, processes: int
    ) -> RunCgroup | None:
        group = cls([], 1)
        try:
            for folder in (memory, pids):
                folder.mkdir()
                group.folders.append(folder)
            (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
            with contextlib.suppress(OSError):  # absent without swap accounting
                (memory / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
            (pids / "pids.max").write_text(str(processes))
        except OSError:
            group.remove()
            return None
        return group

    @classmethod
    def _create_v2(cls, folder: Path, memory_bytes: int, processes: int) -> RunCgroup | None:
        group = cls([], 2)
        try:
            folder.mkdir()
            group.folders.append(folder)
            (folder / "memory.max").write_text(str(memory_bytes))
            (folder / "memory.swap.max").write_text("0")
            (folder / "pids.max").write_text(str(processes))
        except OSError:
            group.remove()
            return None
        return group

    @property
    def procs_files(self) -> list[str]:
        """The files a process writes its pid to, to join the group."""
        return [str(folder / "cgroup.procs") for folder in self.folders]

    def oom_kills(self) -> int:
        """How many processes the OOM killer ended inside the group."""
        if self.version == 2:
            return _counter(self.folders[0] / "memory.events", "oom_kill")
        return _counter(self.folders[0] / "memory.oom_control", "oom_kill")

    def pids_refused(self) -> int:
        """How many forks the group's process limit refused."""
        pids = self.folders[-1] if self.version == 1 else self.folders[0]
        return _counter(pids / "pids.events", "max")

    def kill_all(self) -> None:
        """SIGKILL every process left in the group (the fallback without a pid namespace)."""
        for folder in self.folders:
            with contextlib.suppress(OSError):
                for line in (folder / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(line), signal.SIGKILL)

    def remove(self) -> None:
        """Delete the group; a cgroup can be removed only once its last process is gone."""
        for folder in reversed(self.folders):
            for _attempt in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    self.kill_all()
                    time.sleep(0.02)


def _own_groups() -> dict[str, str]:
    """This process's cgroup path per v1 controller; the v2 path under the key ""."""
    groups: dict[str, str] = {}
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return groups
    for line in lines:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            groups[controller] = path
    return groups


def _counter(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0
