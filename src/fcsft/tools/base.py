"""What every tool shares: arguments checked first, and no failure raised to the caller.

A trajectory records what happened when a model called a tool, failures included, so a tool
never raises into the agent loop: bad arguments, a crash and a timeout all become an error
observation the model can read and react to.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Any

from fcsft.records import Tool
from fcsft.tools.result import ToolResult, render
from fcsft.tools.validation import SchemaChecker

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0


class ArgumentError(ValueError):
    """Arguments that pass the schema but not the tool's own stricter reading of them."""


class BaseTool(ABC):
    """A callable tool: `spec` for the model, `run` for the loop. Subclasses implement `call`."""

    def __init__(self, spec: Tool, timeout: float | None = DEFAULT_TIMEOUT):
        self.spec = spec
        self.timeout = timeout
        self._checker = SchemaChecker(spec.parameters, f"tool {spec.name}")

    @property
    def name(self) -> str:
        return self.spec.name

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        """Validate, call with the time limit, and turn every failure into an error result."""
        if not isinstance(arguments, dict):
            return ToolResult.failure(
                f"invalid arguments for {self.name}: "
                f"expected a JSON object, got {type(arguments).__name__}"
            )
        problems = self._checker.problems(arguments)
        if problems:
            return ToolResult.failure(f"invalid arguments for {self.name}: " + "; ".join(problems))
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                value = await self.call(arguments)
        except TimeoutError as exc:
            if deadline.expired():
                return ToolResult.failure(f"{self.name} timed out after {self.timeout:g}s")
            return self._crashed(exc)
        except ArgumentError as exc:
            return ToolResult.failure(f"invalid arguments for {self.name}: {exc}")
        except (Exception, SystemExit) as exc:  # a tool's bug is the tool's observation, not ours
            return self._crashed(exc)
        return value if isinstance(value, ToolResult) else ToolResult(render(value))

    def _crashed(self, exc: BaseException) -> ToolResult:
        log.debug("tool %s raised", self.name, exc_info=exc)
        detail = f": {exc}" if str(exc) else ""
        return ToolResult.failure(f"{self.name} failed: {type(exc).__name__}{detail}")

    @abstractmethod
    async def call(self, arguments: dict[str, Any]) -> Any:
        """Do the work with arguments that match the schema; return a value or a ToolResult."""

    async def aclose(self) -> None:
        """Release what the tool holds (sessions, processes); the toolbox calls it at the end."""
        return None
