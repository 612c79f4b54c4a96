"""Run untrusted Python code in a separate, confined process and say how it ended.

What confines it (built by `_sandbox_launcher`, strongest first where the machine allows):

- no network: a new, empty network namespace (not even loopback is up);
- a private file system: a new root that holds only the system folders (/usr, /etc, ...)
  and the Python installation, read-only, a few harmless devices, and /scratch, a fresh
  tmpfs of bounded size that is the working folder and is gone when the run ends; the
  host's root is detached, so /root, /home, /tmp, the project and its run data are absent;
- an unprivileged uid of its own (when fcsft runs as root): files of other users and
  mode-600 files are unreadable, and the process limit counts only this run's processes;
- a new pid namespace: when the user process exits or is killed, every process it left
  behind is killed with it;
- limits: CPU seconds (RLIMIT_CPU), address space (RLIMIT_AS), process count
  (RLIMIT_NPROC), file size, open files; and, where cgroups are writable, memory and process
  count for the whole process tree;
- from this side: a wall-clock limit, and an output cap (at most N bytes are read, then the
  run is killed); the environment holds only PATH, LANG, HOME and a few thread settings.

Where namespaces cannot be created, `isolation="required"` (the default) refuses to run
rather than run code with network access; `"best-effort"` runs with the limits only and
says in every result that the network is not isolated.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fcsft.tools._cgroup import RunCgroup

LAUNCHER = Path(__file__).with_name("_sandbox_launcher.py")
# What a program needs to run; the Python installation is added. Nothing else is visible.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/etc")
_UID_BASE = 1_900_000_000  # far above any uid in /etc/passwd


class SandboxLimits(BaseModel):
    """How much one run may use, and how strictly it must be isolated."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    wall_s: float = Field(10.0, gt=0)
    """Seconds of wall-clock time before the run is killed."""
    cpu_s: float = Field(5.0, gt=0)
    """Seconds of CPU time per process (RLIMIT_CPU)."""
    memory_mb: int = Field(512, ge=32)
    """Address space per process in MiB (RLIMIT_AS); with cgroups, also the tree's memory."""
    output_bytes: int = Field(100_000, ge=1)
    """Bytes of stdout and stderr read, together, before the run is killed."""
    processes: int = Field(32, ge=1)
    """Processes and threads the run may have at once (a fork bomb stops here)."""
    disk_mb: int = Field(64, ge=1)
    """Size of the scratch folder (and largest file) in MiB."""
    isolation: Literal["required", "best-effort"] = "required"
    """`required` refuses to run where namespaces (no network, private files) are unavailable;
    `best-effort` runs with resource limits only and says so in every result."""
    read_only: tuple[str, ...] = ()
    """Host paths to show inside the sandbox, read-only (e.g. a data folder)."""


@dataclass
class SandboxRun:
    """How one run ended: its output, its exit, what stopped it, and what confined it."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: int | None = None
    killed: str | None = None  # why the run was stopped from outside, in words
    cpu_s: float = 0.0
    setup_error: str | None = None
    confinement: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # limits that bit without ending the run

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed is None and self.setup_error is None

    def verdict(self, limits: SandboxLimits) -> str:
        """How the run ended, naming the limit that ended it, then any other limit that bit."""
        return "; ".join([self._ending(limits), *self.notes])

    def _ending(self, limits: SandboxLimits) -> str:
        if self.setup_error:
            return f"sandbox failed to start: {self.setup_error}"
        if self.killed:
            return f"killed: {self.killed}"
        if self.signal == signal.SIGXCPU or (
            self.signal == signal.SIGKILL and self.cpu_s >= limits.cpu_s
        ):
            return f"killed: CPU time limit {limits.cpu_s:g}s exceeded"
        if self.signal is not None:
            return f"killed by signal {signal.Signals(self.signal).name}"
        if "MemoryError" in self.stderr:
            return f"exit code {self.exit_code} (memory limit {limits.memory_mb} MiB reached)"
        return f"exit code {self.exit_code}"


async def run_python(code: str, limits: SandboxLimits | None = None) -> SandboxRun:
    """Run `code` as a Python script under `limits`; never raises for anything the code does."""
    limits = limits or SandboxLimits()
    try:
        source = code.encode("utf-8")
    except UnicodeEncodeError as exc:
        # A lone surrogate (a `\ud800` escape in the call's JSON) cannot be a source file; the
        # model hears it the way Python reports a source it cannot read, and nothing runs.
        return SandboxRun(
            stderr=f"SyntaxError: the code is not valid text: {code[exc.start]!r} at character "
            f"{exc.start} is half of a surrogate pair; write the character itself\n",
            exit_code=1,
        )
    box = Path(tempfile.mkdtemp(prefix="fcsft-sandbox-"))
    uid = _UID_BASE + int.from_bytes(os.urandom(3), "big") if os.getuid() == 0 else None
    memory = limits.memory_mb * 2**20
    # The group also holds the launcher and the reaper, hence + 2.
    cgroup = RunCgroup.create(memory + limits.disk_mb * 2**20, limits.processes + 2)
    read_end, write_end = os.pipe()
    try:
        (box / "main.py").write_bytes(source)
        (box / "root").mkdir()
        if uid is not None:
            os.chown(box, uid, uid)  # the working folder where no mount namespace can be made
        config = {
            "status_fd": write_end,
            "box": str(box),
            "new_root": str(box / "root"),
            "uid": uid,
            "python": os.path.realpath(sys.executable),
            "isolation": limits.isolation,
            "cgroups": cgroup.procs_files if cgroup else [],
            "visible": _outermost([*SYSTEM_PATHS, *_python_paths(), *limits.read_only]),
            "env": _environment(),
            "limits": {
                "cpu_s": limits.cpu_s,
                "memory_bytes": memory,
                "disk_bytes": limits.disk_mb * 2**20,
                # With a cgroup, RLIMIT_NPROC is a backstop one above it, so that the cgroup,
                # which counts its refusals, is the limit a fork bomb meets.
                "processes": limits.processes,
                "nproc": _process_limit(limits.processes + (1 if cgroup else 0), uid),
            },
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            str(LAUNCHER),
            json.dumps(config),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=(write_end,),
            start_new_session=True,  # one process group to kill, whatever the code does
            env={"PATH": os.defpath, "LANG": "C.UTF-8"},
            cwd="/",
        )
        os.close(write_end)
        write_end = -1
        run = await _supervise(process, limits, cgroup)
        _apply_status(run, _read_status(read_end))
        if cgroup:
            _note_cgroup_limits(run, cgroup, limits)
        if cgroup is None and run.confinement:
            run.confinement.append(
                "cgroup: unavailable, memory and processes are limited per process"
            )
        return run
    finally:
        for fd in (read_end, write_end):
            if fd >= 0:
                os.close(fd)
        if cgroup:
            cgroup.remove()
        shutil.rmtree(box, ignore_errors=True)


async def _supervise(
    process: asyncio.subprocess.Process, limits: SandboxLimits, cgroup: RunCgroup | None
) -> SandboxRun:
    """Read output under the cap and wait under the wall-clock limit; kill on either."""
    run = SandboxRun()
    budget = limits.output_bytes  # bytes still to be read, stdout and stderr together
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

    def kill(reason: str) -> None:
        if run.killed is None:
            run.killed = reason
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        if cgroup:
            cgroup.kill_all()

    async def drain(stream: asyncio.StreamReader, into: list[bytes]) -> None:
        # Read to the end even past the cap (keeping nothing): a reader that stopped would let
        # the pipe's buffer fill, asyncio would pause the pipe, never see its end, and
        # process.wait(), which waits for the pipes too, would not return.
        nonlocal budget
        while chunk := await stream.read(65536):
            if budget > 0:
                into.append(chunk[:budget])
            budget -= len(chunk)
            if budget < 0 and run.killed is None:
                kill(f"output exceeded {limits.output_bytes} bytes")

    assert process.stdout is not None and process.stderr is not None
    readers = [
        asyncio.create_task(drain(process.stdout, chunks["stdout"])),
        asyncio.create_task(drain(process.stderr, chunks["stderr"])),
    ]
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), limits.wall_s)
    except TimeoutError:
        kill(f"wall time {limits.wall_s:g}s exceeded")
        await process.wait()
    except asyncio.CancelledError:  # the caller gave up: the code must not outlive the call
        kill("cancelled")
        for reader in readers:
            reader.cancel()
        raise
    # Output left in the pipes is read; an escaped process holding them is not waited for.
    _, pending = await asyncio.wait(readers, timeout=2.0)
    if pending:
        kill(run.killed or "output pipes held open after exit")
        for reader in pending:
            reader.cancel()
    run.stdout = b"".join(chunks["stdout"]).decode("utf-8", errors="replace")
    run.stderr = b"".join(chunks["stderr"]).decode("utf-8", errors="replace")
    return run


def _note_cgroup_limits(run: SandboxRun, cgroup: RunCgroup, limits: SandboxLimits) -> None:
    tree_mb = limits.memory_mb + limits.disk_mb
    if cgroup.oom_kills():
        run.notes.append(
            f"the memory limit of the process tree ({tree_mb} MiB) was reached and the kernel "
            f"killed {cgroup.oom_kills()} process(es)"
        )
    if cgroup.pids_refused():
        run.notes.append(
            f"the process limit ({limits.processes}) refused {cgroup.pids_refused()} fork(s)"
        )


def _read_status(read_end: int) -> list[dict]:
    """The launcher's JSON lines; its writers are gone by now, so this never blocks for long."""
    os.set_blocking(read_end, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(read_end, 65536):
            data += chunk
    messages = []
    for line in data.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            messages.append(json.loads(line))
    return messages


def _apply_status(run: SandboxRun, messages: list[dict]) -> None:
    for message in messages:
        run.confinement = message.get("confinement", run.confinement)
        run.setup_error = message.get("setup_error", run.setup_error)
        if "exit" in message:
            run.exit_code = message["exit"]
        if "signal" in message:
            run.signal = message["signal"]
        run.cpu_s = message.get("cpu_s", run.cpu_s)
    if run.setup_error is None and run.exit_code is None and run.signal is None and not run.killed:
        run.setup_error = "the sandbox ended without reporting how the code ended"


def _environment() -> dict[str, str]:
    """Nothing from fcsft's own environment (API keys live there); only what python needs.

    HOME and TMPDIR are set by the launcher to the working folder it ends up with."""
    python_bin = str(Path(os.path.realpath(sys.executable)).parent)
    return {
        "PATH": f"{python_bin}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
        # Threads count against the process limit; numerical libraries start one per core.
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _python_paths() -> list[str]:
    """What the interpreter needs to start: its installation, and a virtualenv if there is one."""
    paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable)]
    return [os.path.realpath(path) for path in paths]


def _outermost(paths: list[str]) -> list[str]:
    """The paths in order, without repeats and without those inside another one."""
    unique = list(dict.fromkeys(os.path.normpath(path) for path in paths))
    return [
        path
        for path in unique
        if not any(path.startswith(other.rstrip("/") + "/") for other in unique)
    ]


def _process_limit(processes: int, uid: int | None) -> int:
    """RLIMIT_NPROC counts every process of the real uid; without a uid of our own, add the
    processes the user already runs so the limit means `processes` more."""
    if uid is not None:
        return processes
    mine = 0  # threads, which is what the kernel counts
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if entry.stat().st_uid == os.getuid():
                    mine += len(os.listdir(f"/proc/{entry.name}/task"))
    return mine + processes
