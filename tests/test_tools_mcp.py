"""MCP tools from a real server written for the test, over stdio and over streamable HTTP."""

import asyncio
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from fcsft.errors import UserError
from fcsft.tools import Toolbox, ToolResult

SERVER = textwrap.dedent('''
    import sys
    from typing import Literal

    from mcp.server.mcpserver import MCPServer

    server = MCPServer("test-tools")


    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b


    @server.tool()
    def greet(name: str, style: Literal["short", "long"] = "short") -> str:
        """Greet someone."""
        return f"hi {name}" if style == "short" else f"good day to you, {name}"


    @server.tool()
    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(reason)


    if __name__ == "__main__":
        if len(sys.argv) > 1:
            server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
        else:
            server.run()
''')


@pytest.fixture
def errlog(tmp_path):
    """Where the servers' stderr goes: a real file, since it becomes a subprocess's stderr."""
    with open(tmp_path / "servers.log", "w") as handle:
        yield handle


@pytest.fixture
def server_script(tmp_path):
    path = tmp_path / "mcp_test_server.py"
    path.write_text(SERVER)
    return path


def stdio_entry(script, **extra):
    return {"mcp": {"command": sys.executable, "args": [str(script)]}, **extra}


def server_processes(script):
    """Live processes running the test server script."""
    found = []
    for pid in filter(str.isdigit, __import__("os").listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if str(script).encode() in handle.read():
                    found.append(pid)
        except OSError:
            continue
    return found


def test_stdio_server_tools_are_listed_and_called(server_script, errlog):
    async def scenario():
        box = await Toolbox.open([stdio_entry(server_script)], errlog=errlog)
        async with box:
            specs = {spec.name: spec for spec in box.specs}
            results = await asyncio.gather(
                box.run("add", {"a": 2, "b": 40}),
                box.run("greet", {"name": "Ada", "style": "long"}),
                box.run("explode", {"reason": "no"}),
                box.run("add", {"a": "two", "b": 1}),
            )
            alive = server_processes(server_script)
        return specs, results, alive

    specs, (added, greeted, exploded, invalid), alive = asyncio.run(scenario())
    assert sorted(specs) == ["add", "explode", "greet"]
    assert specs["add"].description == "Add two integers."
    assert specs["add"].required == ["a", "b"]
    assert specs["greet"].parameters["properties"]["style"]["enum"] == ["short", "long"]
    assert added == ToolResult("42")
    assert greeted == ToolResult("good day to you, Ada")
    assert exploded.error and "explode" in exploded.content
    assert invalid.error and invalid.content.startswith("invalid arguments for add: a: 'two'")
    assert alive  # the session stayed open while the toolbox was
    time.sleep(0.2)
    assert server_processes(server_script) == []  # and closing it ended the server


def test_include_and_prefix(server_script, errlog):
    async def scenario():
        entry = stdio_entry(server_script, include=["add"], prefix="calc_")
        async with await Toolbox.open([entry], errlog=errlog) as box:
            return list(box), await box.run("calc_add", {"a": 1, "b": 1})

    names, result = asyncio.run(scenario())
    assert names == ["calc_add"]
    assert result == ToolResult("2")


def test_asking_for_a_tool_the_server_lacks_is_a_user_error(server_script, errlog):
    with pytest.raises(UserError, match="has no tool subtract; it has: add, explode, greet"):
        asyncio.run(Toolbox.open([stdio_entry(server_script, include=["subtract"])], errlog=errlog))
    time.sleep(0.2)
    assert server_processes(server_script) == []


def test_a_server_that_does_not_start_is_a_user_error(tmp_path, errlog):
    broken = tmp_path / "broken.py"
    broken.write_text("raise SystemExit('cannot start')")
    started = time.monotonic()
    with pytest.raises(UserError, match=r"MCP server .*broken\.py: cannot connect"):
        asyncio.run(Toolbox.open([stdio_entry(broken)], errlog=errlog))
    assert time.monotonic() - started < 30  # refused, not hung
    errlog.flush()
    assert "cannot start" in (tmp_path / "servers.log").read_text()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_streamable_http_server(server_script):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(server_script), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP MCP server did not start"
                time.sleep(0.05)

        async def scenario():
            async with await Toolbox.open([{"mcp": f"http://127.0.0.1:{port}/mcp"}]) as box:
                return list(box), await box.run("greet", {"name": "Lin"})

        names, result = asyncio.run(scenario())
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert sorted(names) == ["add", "explode", "greet"]
    assert result == ToolResult("hi Lin")
