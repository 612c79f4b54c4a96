"""Run the `fcsft` command the way a user does: a real subprocess, stdout, stderr, exit code."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def fcsft(
    *args, cwd: Path | None = None, timeout: int = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    # The tests folder is importable, so configs may name test helpers as `module:function`.
    env = {
        **os.environ,
        **(env or {}),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "fcsft.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
