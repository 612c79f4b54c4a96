"""Tools served by an MCP server, over stdio (a subprocess) or streamable HTTP (a URL).

One connection per server stays open for the toolbox's lifetime. The MCP client is built on
anyio, whose context managers must be entered and exited by the same task; the agent loop
calls tools from many tasks and the toolbox may be closed from yet another, so each
connection lives in a task of its own that opens it, holds it, and closes it when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from typing import Any, TextIO

from pydantic import BaseModel, ConfigDict, Field, model_validator

from fcsft.errors import UserError, require
from fcsft.records import Tool
from fcsft.tools.base import DEFAULT_TIMEOUT, BaseTool
from fcsft.tools.result import ToolResult

OPEN_TIMEOUT = 30.0
CLOSE_TIMEOUT = 10.0


class McpServer(BaseModel):
    """Where a server is: a `command` to start (stdio) or a `url` (streamable HTTP).

    `$VAR` in `env` and `headers` values is replaced from fcsft's environment, so tokens can
    stay out of the config file.
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    command: str | None = None
    """Program that serves MCP on its stdin and stdout, e.g. `npx` or `python`."""
    args: list[str] = Field(default_factory=list)
    """Its arguments."""
    env: dict[str, str] = Field(default_factory=dict)
    """Environment variables for it, besides PATH, HOME and the like."""
    cwd: str | None = None
    """Folder it starts in."""
    url: str | None = None
    """The server's streamable HTTP endpoint, e.g. `http://localhost:8000/mcp`."""
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP headers sent with every request, e.g. `Authorization: Bearer $TOKEN`."""

    @model_validator(mode="after")
    def _one_transport(self) -> McpServer:
        if (self.command is None) == (self.url is None):
            raise ValueError("give exactly one of `command` (stdio) or `url` (streamable HTTP)")
        return self

    @property
    def label(self) -> str:
        return self.url or " ".join([self.command or "", *self.args]).strip()


class McpConnection:
    """An open session with one MCP server, owned by a background task."""

    def __init__(self, server: McpServer, *, errlog: TextIO | None = None):
        self.server = server
        self.tools: list[Any] = []
        self._errlog = errlog or sys.stderr
        self._client: Any = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._failure: BaseException | None = None
        self._owner: asyncio.Task[None] | None = None

    async def open(self) -> list[Any]:
        """Connect and list the server's tools; a server that cannot be reached is a UserError."""
        self._owner = asyncio.create_task(self._hold(), name=f"mcp {self.server.label}")
        try:
            await asyncio.wait_for(self._ready.wait(), OPEN_TIMEOUT)
        except TimeoutError:
            await self.close()
            raise UserError(
                f"MCP server {self.server.label}: no answer within {OPEN_TIMEOUT:g}s"
            ) from None
        if self._failure is not None:
            await self.close()
            raise UserError(
                f"MCP server {self.server.label}: cannot connect: {_reason(self._failure)}"
            )
        return self.tools

    async def call(self, name: str, arguments: dict[str, Any]) -> Any:
        if self._client is None or self._closing.is_set():
            raise ConnectionError(f"the MCP server {self.server.label} is not connected")
        return await self._client.call_tool(name, arguments)

    async def close(self) -> None:
        """Ask the owner task to leave the session, and wait for it (bounded)."""
        self._closing.set()
        owner, self._owner = self._owner, None
        if owner is None:
            return
        # The owner never raises (it keeps its failure for open()); a stuck one is cancelled.
        _, stuck = await asyncio.wait({owner}, timeout=CLOSE_TIMEOUT)
        for task in stuck:
            task.cancel()

    async def _hold(self) -> None:
        try:
            mcp = require("mcp", "mcp")
            async with contextlib.AsyncExitStack() as stack:
                transport = await self._transport(stack)
                client = await stack.enter_async_context(mcp.Client(transport, cache=None))
                self.tools = await _all_tools(client)
                self._client = client
                self._ready.set()
                await self._closing.wait()
                self._client = None  # calls from now on fail fast instead of racing the close
        except Exception as exc:
            self._failure = exc
        finally:
            self._client = None
            self._ready.set()

    async def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        server = self.server
        if server.url is not None:
            streamable_http = require("mcp.client.streamable_http", "mcp")
            httpx = require("httpx2", "mcp")
            headers = {key: os.path.expandvars(value) for key, value in server.headers.items()}
            http = await stack.enter_async_context(
                httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(30.0, read=300.0))
            )
            return streamable_http.streamable_http_client(server.url, http_client=http)
        mcp = require("mcp", "mcp")
        stdio = require("mcp.client.stdio", "mcp")
        parameters = mcp.StdioServerParameters(
            command=server.command,
            args=list(server.args),
            env={key: os.path.expandvars(value) for key, value in server.env.items()} or None,
            cwd=server.cwd,
        )
        return stdio.stdio_client(parameters, errlog=self._errlog)


class McpTool(BaseTool):
    """One tool of a connected server; its schema is the server's `inputSchema`."""

    def __init__(
        self,
        connection: McpConnection,
        listed: Any,
        *,
        name: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ):
        spec = Tool(
            name=name or listed.name,
            description=listed.description or listed.title or "",
            parameters=listed.input_schema or {"type": "object", "properties": {}},
        )
        super().__init__(spec, timeout)
        self.remote_name = listed.name
        self._connection = connection

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        result = await self._connection.call(self.remote_name, arguments)
        return ToolResult(_content_text(result), error=bool(result.is_error))

    async def aclose(self) -> None:
        await self._connection.close()  # shared by the server's tools; closing twice is harmless


async def mcp_tools(
    server: McpServer,
    *,
    prefix: str = "",
    include: list[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    errlog: TextIO | None = None,
) -> tuple[McpConnection, list[McpTool]]:
    """Connect to `server` and wrap the tools it lists (only those in `include`, if given)."""
    connection = McpConnection(server, errlog=errlog)
    listed = await connection.open()
    names = {tool.name for tool in listed}
    missing = sorted(set(include or ()) - names)
    if missing:
        await connection.close()
        raise UserError(
            f"MCP server {server.label} has no tool {', '.join(missing)}; "
            f"it has: {', '.join(sorted(names))}"
        )
    chosen = [tool for tool in listed if include is None or tool.name in include]
    tools = [McpTool(connection, tool, name=prefix + tool.name, timeout=timeout) for tool in chosen]
    return connection, tools


async def _all_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            return tools


def _content_text(result: Any) -> str:
    """Text blocks as they are; structured content as JSON; other media named, not inlined."""
    parts: list[str] = []
    for block in result.content or []:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            parts.append(f"[{kind}: {getattr(block, 'mime_type', 'unknown type')}]")
        elif kind == "resource_link":
            parts.append(f"[resource: {getattr(block, 'uri', '')}]")
        else:
            parts.append(f"[{kind or 'content'}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)


def _reason(exc: BaseException) -> str:
    """The innermost useful message: anyio wraps failures in exception groups."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
