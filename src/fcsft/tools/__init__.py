"""Tools a model can call: typed Python functions, built-ins, MCP servers and simulated APIs.

Every tool has a `spec` (a `fcsft.records.Tool`: name, description, JSON-schema parameters)
and `async run(arguments) -> ToolResult`, which checks the arguments against the schema and
turns every failure (bad arguments, an exception, a timeout) into an error result.
"""

from fcsft.tools.base import BaseTool
from fcsft.tools.config import BuildContext, ToolEntry, parse_entries
from fcsft.tools.fetch import FetchOptions, fetch_tool
from fcsft.tools.function import FunctionTool, load_function
from fcsft.tools.mcp_tools import McpServer, McpTool, mcp_tools
from fcsft.tools.python import python_tool
from fcsft.tools.result import ToolResult
from fcsft.tools.sandbox import SandboxLimits, SandboxRun, run_python
from fcsft.tools.schema import function_spec
from fcsft.tools.search import SearchOptions, search_tool
from fcsft.tools.simulated import SimulatedTool
from fcsft.tools.toolbox import Toolbox

__all__ = [
    "BaseTool",
    "BuildContext",
    "FetchOptions",
    "FunctionTool",
    "McpServer",
    "McpTool",
    "SandboxLimits",
    "SandboxRun",
    "SearchOptions",
    "SimulatedTool",
    "ToolEntry",
    "ToolResult",
    "Toolbox",
    "fetch_tool",
    "function_spec",
    "load_function",
    "mcp_tools",
    "parse_entries",
    "python_tool",
    "run_python",
    "search_tool",
]
