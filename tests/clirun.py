"""Run the `fcsft` command the way a user does: a real subprocess, stdout, stderr, exit code."""

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def fcsft(
    *args, cwd: Path | None = None, timeout: int = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    # The tests folder is importable, so configs may name test helpers as `module:function`;
    # a PYTHONPATH in `env` comes before the caller's.
    env = env or {}
    paths = [str(HERE), env.get("PYTHONPATH", ""), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    return subprocess.run(
        [sys.executable, "-m", "fcsft.cli", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def fcsft_here(*args, capsys) -> subprocess.CompletedProcess:
    """The same entry point run in this process (`fcsft.cli.main`, argv as a user types it):
    exit code, stdout and stderr as a subprocess would give them, at a fraction of the cost.
    An exception that escapes `main` is a bug: its traceback is returned on stderr, exit 1."""
    import traceback

    from fcsft.cli import main

    argv = ["fcsft", *map(str, args)]
    saved, sys.argv = sys.argv, argv
    capsys.readouterr()
    code = 0
    crash = ""
    try:
        main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except Exception:
        code, crash = 1, traceback.format_exc()
    finally:
        sys.argv = saved
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err + crash)
