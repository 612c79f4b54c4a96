"""The `python` built-in: run a snippet in the sandbox and show the model what it printed."""

from __future__ import annotations

from typing import Any

from fcsft.tools.function import FunctionTool
from fcsft.tools.result import ToolResult
from fcsft.tools.sandbox import SandboxLimits, run_python


class PythonRunner:
    """Sandbox limits; `python` is the function the model calls."""

    def __init__(self, limits: SandboxLimits | None = None):
        self.limits = limits or SandboxLimits()

    async def python(self, code: str) -> ToolResult:
        """Run a Python 3 program and return what it prints.

        Each call starts fresh: no state is kept between calls, there is no network access,
        and only the standard library and installed packages are available.

        Args:
            code: A complete Python program; use print() to show results.
        """
        run = await run_python(code, self.limits)
        parts = [run.stdout.rstrip("\n")] if run.stdout.strip() else []
        if run.stderr.strip():
            parts.append("[stderr]\n" + run.stderr.rstrip("\n"))
        if not run.ok:
            parts.append(f"[{run.verdict(self.limits)}]")
        elif run.notes:
            parts.append(f"[{'; '.join(run.notes)}]")
        return ToolResult("\n".join(parts) or "(no output)", error=not run.ok)


def python_tool(
    *, name: str = "python", timeout: float | None = None, **limits: Any
) -> FunctionTool:
    """A `python` tool; `limits` are `SandboxLimits` fields (wall_s, cpu_s, memory_mb, ...)."""
    runner = PythonRunner(SandboxLimits(**limits))
    # The sandbox enforces its own wall time and says so; this outer limit is only a backstop.
    return FunctionTool(runner.python, name=name, timeout=timeout or runner.limits.wall_s + 10)
