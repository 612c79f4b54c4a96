"""The `tools:` list of project.yaml, typed: one entry kind per tool source, a docstring per field.

    tools:
      - python                                  # a built-in by name, default settings
      - builtin: search
        folder: docs/
      - builtin: fetch
        root: docs/
      - mytools.weather:forecast                # a user function, MODULE:FUNCTION
      - function: mytools.crm:find_customer
        name: crm_lookup
      - mcp: {command: npx, args: ["-y", "@modelcontextprotocol/server-everything"]}
        include: [echo, add]
      - mcp: {url: "http://localhost:8000/mcp"}
        prefix: "gh_"
      - simulate: {name: get_stock_price, description: ..., parameters: {...}}
        returns: {type: object, properties: {price: {type: number}}, required: [price]}
      - environment: {classes: [GorillaFileSystem, MathAPI]}   # stateful, one per trajectory
        include: [ls, cd, mkdir, cat, mean]

Each entry kind knows how to build its tools (`build`), so the toolbox has no branch per kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, TextIO

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from fcsft.errors import UserError
from fcsft.records import Tool
from fcsft.tools.base import DEFAULT_TIMEOUT, BaseTool
from fcsft.tools.environment import EnvironmentOptions, environment_tools
from fcsft.tools.fetch import FetchOptions, fetch_tool
from fcsft.tools.function import FunctionTool, load_function
from fcsft.tools.mcp_tools import McpServer, mcp_tools
from fcsft.tools.python import python_tool
from fcsft.tools.sandbox import SandboxLimits
from fcsft.tools.search import SearchOptions, search_tool
from fcsft.tools.simulated import ChatLike, SimulatedTool

BUILTINS = ("search", "fetch", "python")


@dataclass
class BuildContext:
    """What building tools needs besides their config."""

    base_dir: Path = field(default_factory=Path.cwd)  # relative paths in config are relative to it
    models: Mapping[str, ChatLike] = field(default_factory=dict)  # by role, for simulated tools
    cache_dir: Path | None = None  # where simulated tools keep their observations
    errlog: TextIO | None = None  # a real file for stdio MCP servers' stderr (default: ours)

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else self.base_dir / value


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    async def build(self, context: BuildContext) -> list[BaseTool]:
        raise NotImplementedError


class SearchEntry(_Entry, SearchOptions):
    builtin: Literal["search"]
    """BM25 search over a folder of .md and .txt documents."""
    name: str = "search"
    """The name the model calls it by."""

    async def build(self, context: BuildContext) -> list[BaseTool]:
        options = self.model_dump(include=set(SearchOptions.model_fields) - {"folder"})
        return [search_tool(context.path(self.folder), name=self.name, **options)]


class FetchEntry(_Entry, FetchOptions):
    builtin: Literal["fetch"]
    """http(s) pages, and files under `root`, as text."""
    name: str = "fetch"
    """The name the model calls it by."""

    async def build(self, context: BuildContext) -> list[BaseTool]:
        options = self.model_dump(include=set(FetchOptions.model_fields))
        if self.root is not None:
            options["root"] = context.path(self.root)
        return [fetch_tool(name=self.name, **options)]


class PythonEntry(_Entry, SandboxLimits):
    model_config = ConfigDict(frozen=False)

    builtin: Literal["python"]
    """Python code run in the sandbox."""
    name: str = "python"
    """The name the model calls it by."""

    async def build(self, context: BuildContext) -> list[BaseTool]:
        return [
            python_tool(name=self.name, **self.model_dump(include=set(SandboxLimits.model_fields)))
        ]


class FunctionEntry(_Entry):
    function: str
    """`package.module:function`; its signature and docstring become the schema."""
    name: str | None = None
    """The name the model calls it by (default: the function's name)."""
    timeout_s: float | None = Field(DEFAULT_TIMEOUT, gt=0)
    """Seconds a call may take."""

    async def build(self, context: BuildContext) -> list[BaseTool]:
        target = load_function(self.function)
        if isinstance(target, BaseTool):
            return [target]
        return [FunctionTool(target, name=self.name, timeout=self.timeout_s)]


class McpEntry(_Entry):
    mcp: McpServer
    """The server: `{command, args, env, cwd}` for stdio or `{url, headers}` for HTTP."""
    include: list[str] | None = None
    """Only these of the server's tools (default: all it lists)."""
    prefix: str = ""
    """Prepended to each tool's name, to keep two servers' names apart."""
    timeout_s: float | None = Field(DEFAULT_TIMEOUT, gt=0)
    """Seconds a call may take."""

    @field_validator("mcp", mode="before")
    @classmethod
    def _url_shorthand(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    async def build(self, context: BuildContext) -> list[BaseTool]:
        server = self.mcp
        if server.cwd is not None:
            server = server.model_copy(update={"cwd": str(context.path(Path(server.cwd)))})
        _, tools = await mcp_tools(
            server,
            prefix=self.prefix,
            include=self.include,
            timeout=self.timeout_s,
            errlog=context.errlog,
        )
        return list(tools)


class SimulatedEntry(_Entry):
    simulate: Tool
    """The API as the model sees it: name, description, parameters schema."""
    returns: dict[str, Any]
    """JSON schema of what the API returns; every simulated result is checked against it."""
    model: str = "simulator"
    """Which model (by role in `models:`) plays the API."""
    cache: Path | None = None
    """SQLite file of remembered results (default: tool_observations.sqlite in the cache dir)."""
    timeout_s: float | None = Field(120.0, gt=0)
    """Seconds a call may take, the model's retry included."""

    async def build(self, context: BuildContext) -> list[BaseTool]:
        if self.model not in context.models:
            known = ", ".join(sorted(context.models)) or "none"
            raise UserError(
                f"simulated tool {self.simulate.name}: no model with role {self.model!r} "
                f"(known: {known})"
            )
        cache = context.path(self.cache) if self.cache else None
        if cache is None and context.cache_dir is not None:
            cache = context.cache_dir / "tool_observations.sqlite"
        return [
            SimulatedTool(
                self.simulate,
                self.returns,
                context.models[self.model],
                cache=cache,
                timeout=self.timeout_s,
            )
        ]


class EnvironmentEntry(_Entry):
    environment: EnvironmentOptions
    """BFCL's API classes as stateful tools, loaded afresh for every trajectory from the task's
    `environment` (see fcsft.tools.environment)."""
    include: list[str] | None = None
    """Only these of the classes' methods (default: every one BFCL describes)."""

    async def build(self, context: BuildContext) -> list[BaseTool]:
        return environment_tools(self.environment, self.include)


def _kind(value: Any) -> str | None:
    """Which entry kind a raw entry is, by its distinguishing key."""
    if isinstance(value, _Entry):
        value = value.model_dump()
    if isinstance(value, dict):
        if "builtin" in value:
            return value["builtin"] if value["builtin"] in BUILTINS else "unknown builtin"
        keys = ("function", "mcp", "simulate", "environment")
        return next((key for key in keys if key in value), None)
    return None


def expand_shorthand(entry: Any) -> Any:
    """`python` means `{builtin: python}`; `pkg.mod:fn` means `{function: pkg.mod:fn}`."""
    if isinstance(entry, str):
        return {"function": entry} if ":" in entry else {"builtin": entry}
    return entry


ToolEntry = Annotated[
    Annotated[SearchEntry, Tag("search")]
    | Annotated[FetchEntry, Tag("fetch")]
    | Annotated[PythonEntry, Tag("python")]
    | Annotated[FunctionEntry, Tag("function")]
    | Annotated[McpEntry, Tag("mcp")]
    | Annotated[SimulatedEntry, Tag("simulate")]
    | Annotated[EnvironmentEntry, Tag("environment")],
    Discriminator(
        _kind,
        custom_error_type="tool_entry",
        custom_error_message=(
            "expected a built-in name (search, fetch, python), MODULE:FUNCTION, or a mapping "
            "with one of the keys builtin, function, mcp, simulate, environment"
        ),
    ),
    BeforeValidator(expand_shorthand),
]


def parse_entries(raw: list[Any]) -> list[_Entry]:
    """Validate a `tools:` list; every problem is reported at once with its position."""
    adapter = TypeAdapter(list[ToolEntry])
    try:
        return adapter.validate_python(raw)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            lines.append(f"  tools.{where}: {error['msg']}")
        raise UserError("invalid tools config\n" + "\n".join(lines)) from None
