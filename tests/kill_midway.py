"""The crash every resume test starts from: a stage's process killed once some work is in."""

import signal
import subprocess
import sys
import time
from pathlib import Path


def kill_once_committed(
    child: subprocess.Popen, ledger: Path, lines: int, timeout_s: float = 60
) -> int:
    """SIGKILL `child` as soon as its stage's ledger holds `lines` lines (or after `timeout_s`);
    returns how many lines the ledger held after the kill."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ledger.exists() and ledger.read_bytes().count(b"\n") >= lines:
            break
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    return ledger.read_bytes().count(b"\n") if ledger.exists() else 0


def kill_generate_midway(project: Path, lines: int) -> int:
    """Start `fcsft generate project` (its run directory `run/` beside the project file) and
    SIGKILL it once its ledger holds `lines` lines; returns the lines held after the kill."""
    child = subprocess.Popen(
        [sys.executable, "-m", "fcsft.cli", "generate", str(project)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return kill_once_committed(child, project.parent / "run/generate/_ledger.jsonl", lines)
