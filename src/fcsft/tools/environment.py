"""Stateful tools: BFCL's executable API classes, one fresh instance per trajectory.

    tools:
      - environment:
          classes: [GorillaFileSystem, MathAPI]
          initial_config: {GorillaFileSystem: {root: {alex: {type: directory, contents: {}}}}}
        include: [ls, cd, mkdir, touch, echo, cat, mean]

An `environment:` entry holds the classes named (any of those bfcl-eval ships: the file
system, trading bot, travel booking, messaging, vehicle control, ...; see
`fcsft.tools.bfcl_env`). Each method BFCL describes is a tool, with BFCL's own description as
its schema (`include` keeps some of them). A call changes the instance's state, and later
calls see the change.

The toolbox lists those tools once, for their names and schemas, but they run only on an
instance: `for_trajectory` gives the tools of one trajectory, every environment loaded
afresh from the task's own `environment` (its initial configuration by class, in BFCL's
`initial_config` layout), a class the task does not configure from the entry's
`initial_config`, and every other tool as it is. So no two trajectories, concurrent or
samples of one task, ever share a state, and a run resumed after a crash starts each task
from the same state as the first run did. `Session.state()` is the state the calls left (each
class's public attributes as JSON), which generation records in `meta.state`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fcsft.errors import UserError
from fcsft.records import Tool
from fcsft.tools.base import BaseTool
from fcsft.tools.bfcl_env import Environment, function_docs, known_classes, specs
from fcsft.tools.result import ToolResult


class EnvironmentOptions(BaseModel):
    """The classes of one environment and where their state starts."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    classes: list[str] = Field(min_length=1)
    """BFCL's API classes to hold (GorillaFileSystem, MathAPI, MessageAPI, TicketAPI,
    TradingBot, TravelAPI, TwitterAPI, VehicleControlAPI)."""
    initial_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Initial configuration by class, for a task whose own `environment` does not configure
    that class (BFCL's layout; a class configured nowhere starts as BFCL's default)."""
    long_context: bool = False
    """Load the classes' long variants (BFCL's long-context scenarios)."""

    @field_validator("classes")
    @classmethod
    def _known(cls, classes: list[str]) -> list[str]:
        try:
            known = known_classes()
        except UserError as exc:
            raise ValueError(str(exc)) from None
        unknown = [name for name in classes if name not in known]
        if unknown:
            raise ValueError(f"unknown classes {unknown}; known: {', '.join(known)}")
        return classes

    @model_validator(mode="after")
    def _configures_its_classes(self) -> EnvironmentOptions:
        stray = sorted(set(self.initial_config) - set(self.classes))
        if stray:
            raise ValueError(f"initial_config names {stray}, which are not among the classes")
        return self


class Template:
    """One environment entry: what every trajectory's instance is made from."""

    def __init__(self, options: EnvironmentOptions, tools: dict[str, Tool]):
        self.options = options
        self.tools = tools

    def open(self, configuration: Mapping[str, Any]) -> Environment:
        """A fresh instance, each class loaded from `configuration` when it names the class."""
        initial = {
            name: configuration.get(name, self.options.initial_config.get(name, {}))
            for name in self.options.classes
        }
        return Environment(
            self.options.classes,
            initial,
            long_context=self.options.long_context,
            specs=self.tools,
        )


class EnvironmentTool(BaseTool):
    """A method of an environment as the toolbox lists it: the name and schema the model is
    shown. It runs nothing itself; `for_trajectory` puts the method of a fresh instance in its
    place."""

    def __init__(self, spec: Tool, template: Template):
        super().__init__(spec, timeout=None)
        self.template = template

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        return ToolResult.failure(
            f"{self.name} belongs to an environment and runs only on a trajectory's own "
            "instance (fcsft.tools.environment.for_trajectory)"
        )


def environment_tools(options: EnvironmentOptions, include: list[str] | None) -> list[BaseTool]:
    """The tools of one `environment:` entry (see the module)."""
    described = specs(function_docs(options.classes))
    if include is not None:
        missing = [name for name in include if name not in described]
        if missing:
            raise UserError(
                f"environment {', '.join(options.classes)}: include names {missing}, which "
                f"they have not; they have: {', '.join(described)}"
            )
        described = {name: described[name] for name in include}
    template = Template(options, described)
    return [EnvironmentTool(spec, template) for spec in described.values()]


@dataclass
class Session:
    """The tools of one trajectory and the environments they run on."""

    tools: dict[str, Any]
    environments: list[Environment] = field(default_factory=list)

    def state(self) -> dict[str, Any] | None:
        """Each class's state as JSON, by class name; None when no tool is stateful."""
        if not self.environments:
            return None
        return {k: v for env in self.environments for k, v in env.state_json().items()}


def for_trajectory(
    tools: Mapping[str, Any], configuration: Mapping[str, Any] | None, where: str
) -> Session:
    """`tools` for one trajectory: each environment's tools on a fresh instance loaded from
    `configuration` (see the module), the rest as they are. `where` names the task in the
    UserError raised when the configuration names a class none of the environments holds or
    cannot be loaded."""
    templates: dict[int, Template] = {}
    for tool in tools.values():
        if isinstance(tool, EnvironmentTool):
            templates.setdefault(id(tool.template), tool.template)
    held = [name for template in templates.values() for name in template.options.classes]
    stray = sorted(set(configuration or {}) - set(held))
    if stray:
        raise UserError(
            f"{where}: environment configures {stray}, but its tools hold "
            f"{', '.join(held) or 'no environment'}; fix the class names or the tools"
        )
    try:
        opened = {key: template.open(configuration or {}) for key, template in templates.items()}
    except Exception as exc:  # BFCL's loaders fail on a malformed configuration in their own ways
        raise UserError(
            f"{where}: its environment cannot be loaded ({type(exc).__name__}: {exc}); write it "
            "in BFCL's initial_config layout, such as {GorillaFileSystem: {root: {NAME: "
            "{type: directory, contents: {FILE: {type: file, content: TEXT}}}}}}"
        ) from exc
    bound = {
        name: opened[id(tool.template)].methods[name] if isinstance(tool, EnvironmentTool) else tool
        for name, tool in tools.items()
    }
    return Session(bound, list(opened.values()))
