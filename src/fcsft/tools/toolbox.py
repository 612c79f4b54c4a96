"""The tools one run may call, by name; it opens what they need and closes it at the end.

    async with await Toolbox.open(config["tools"], models={"simulator": model}) as tools:
        trajectory = await run_agent(model, "teacher", question, tools, ident="t1")

A Toolbox is a read-only mapping of name to tool, which is what the agent loop takes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

from fcsft.errors import UserError
from fcsft.records import Tool
from fcsft.tools.base import BaseTool
from fcsft.tools.config import BuildContext, parse_entries
from fcsft.tools.function import FunctionTool
from fcsft.tools.result import ToolResult
from fcsft.tools.simulated import ChatLike


class Toolbox(Mapping[str, BaseTool]):
    """Tools by name. Plain functions given to it are wrapped as `FunctionTool`s."""

    def __init__(self, tools: Iterable[BaseTool | Callable[..., Any]] = ()):
        self._tools: dict[str, BaseTool] = {}
        for tool in tools:
            self.add(tool)

    @classmethod
    async def open(
        cls,
        entries: list[Any],
        *,
        base_dir: Path | None = None,
        models: Mapping[str, ChatLike] | None = None,
        cache_dir: Path | None = None,
        errlog: TextIO | None = None,
    ) -> Toolbox:
        """Build every tool a `tools:` config list names, connecting to MCP servers.

        If any entry fails, what was already opened is closed before the error is raised.
        """
        context = BuildContext(
            base_dir=base_dir or Path.cwd(), models=models or {}, cache_dir=cache_dir, errlog=errlog
        )
        box = cls()
        opened: list[BaseTool] = []
        try:
            for entry in parse_entries(entries):
                built = await entry.build(context)
                opened.extend(built)
                for tool in built:
                    box.add(tool)
        except BaseException:
            await asyncio.gather(*(tool.aclose() for tool in opened), return_exceptions=True)
            raise
        return box

    def add(self, tool: BaseTool | Callable[..., Any]) -> BaseTool:
        if not isinstance(tool, BaseTool):
            tool = FunctionTool(tool)
        if tool.name in self._tools:
            raise UserError(
                f"two tools are named {tool.name!r}; rename one (name:, or prefix: for MCP)"
            )
        self._tools[tool.name] = tool
        return tool

    @property
    def specs(self) -> list[Tool]:
        """What the model is told about each tool, in the order they were added."""
        return [tool.spec for tool in self._tools.values()]

    async def run(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """Call a tool by name; an unknown name is an error result, like any other failed call."""
        tool = self._tools.get(name)
        if tool is None:
            known = ", ".join(self._tools) or "none"
            return ToolResult.failure(f"unknown tool {name!r}; available: {known}")
        return await tool.run(arguments)

    async def aclose(self) -> None:
        """Close every tool (MCP sessions, ...); one that fails to close does not stop the rest."""
        await asyncio.gather(
            *(tool.aclose() for tool in self._tools.values()), return_exceptions=True
        )

    async def __aenter__(self) -> Toolbox:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __getitem__(self, name: str) -> BaseTool:
        return self._tools[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)
