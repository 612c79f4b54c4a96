"""The step registry: each step of the pipeline registers itself, and `fcsft run`, the step
commands and the dataset card read this one list.

A step is a function that gets a `Context` and returns the `Stage` to run, registered with

    @step("validate", reads=("generate",), config="validate")
    def validate(ctx: Context) -> Stage: ...

`reads` names the steps whose `out.jsonl` it reads (its inputs, in that order) and so places
it in the run order; `config` names its section of project.yaml (`ctx.section`). A step that
reads other files (seed sheets the user names, the review's output when there is one) returns
`(stage, inputs)` instead. The runner runs the stage over the inputs in `RUN_DIR/NAME/`, so
every step writes `out.jsonl`, `rejected.jsonl` with reasons, `stats.json` and its marker.

Steps are found, not listed: every `step.py` in a package directly under `fcsft` is imported,
and plugins register theirs through the `fcsft.steps` entry point group. The run order is
the order of `reads` (a step runs after every step it reads), ties broken by name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

from fcsft.errors import UserError
from fcsft.stage import OnProgress, RunStage, Stage, Watch, Workplace


class LiveLessons(Watch, Protocol):
    """Lessons learned while a stage runs (`memory:` on): it watches the stage's commits and
    hands each task the lessons it is to be generated with."""

    key: dict[str, Any]
    """What changes the lessons (for the stage's key)."""

    async def for_task(self, ident: str) -> tuple[str, list[str]]:
        """(version, lessons) for the task `ident`, once they are settled."""

    def report(self, directory: Path) -> dict[str, Any]:
        """What the lessons did, for the stage's stats."""


class Context(Protocol):
    """What a step gets from the runner: the project, its section, models by role, tools."""

    config: Any
    """The whole project config (`fcsft.config.ProjectConfig`)."""
    base_dir: Path
    """The folder project.yaml is in: paths in the config are relative to it."""

    @property
    def run_dir(self) -> Path: ...

    @property
    def section(self) -> Any:
        """The step's own section of the project config (the `config=` it registered with)."""

    @property
    def inputs(self) -> list[Path]:
        """`out.jsonl` of each step in `reads`, in that order."""

    def model(self, role: str) -> tuple[Any, str]:
        """(client, model name) for a role of `models:`, opened once per run."""

    async def tools(self, role: str, client: Any) -> Any:
        """The project's tools (a `fcsft.tools.Toolbox`); `role`'s model answers simulated ones."""

    def executor(self, kind: str, address: str | None = None, workers: int | None = None) -> Any:
        """The executor named `kind` (local, ray) for the stage's records."""

    def detached(self) -> Callable[[Workplace], Context]:
        """A picklable callable that opens an equivalent context in another process, one that
        keeps in the `Workplace` it is given what it would keep in the run directory."""

    async def close(self) -> None:
        """Close the models this context opened (and its response cache)."""

    def lessons(self) -> list[str]:
        """The teacher lessons of `memory/teacher.md`, in order."""

    def live_lessons(self) -> LiveLessons | None:
        """Lessons learned during this step from its validated commits; None when `memory:`
        is off."""

    run_stage: RunStage
    """The runner, for a step that runs stages of its own."""

    def on_progress(self, name: str) -> OnProgress | None: ...


Build = Callable[[Context], "Stage | tuple[Stage, list[Path]]"]


@dataclass(frozen=True)
class Step:
    name: str
    build: Build
    reads: tuple[str, ...] = ()
    config: str | None = None
    may_be_empty: bool = False
    """Its output may be empty without stopping the run (combinations are optional)."""
    manual: str | None = None
    """Run by a person through this command, never by `fcsft run` (the review)."""


_REGISTRY: dict[str, Step] = {}


def step(
    name: str,
    *,
    reads: tuple[str, ...] = (),
    config: str | None = None,
    may_be_empty: bool = False,
    manual: str | None = None,
) -> Callable[[Build], Build]:
    """Register the decorated function as the step `name` (see the module docstring)."""

    def register(build: Build) -> Build:
        known = _REGISTRY.get(name)
        if known is not None and known.build.__qualname__ != build.__qualname__:
            raise ValueError(f"two steps are named {name!r}: {known.build} and {build}")
        _REGISTRY[name] = Step(name, build, tuple(reads), config, may_be_empty, manual)
        return build

    return register


_found = False


def _discover() -> None:
    global _found
    if _found:
        return
    for module in sorted(Path(__file__).parent.glob("*/step.py")):
        importlib.import_module(f"fcsft.{module.parent.name}.step")
    for entry in entry_points(group="fcsft.steps"):
        entry.load()
    _found = True


def steps() -> list[Step]:
    """Every registered step in run order: each after the steps it reads, ties by name."""
    _discover()
    for entry in _REGISTRY.values():
        for read in entry.reads:
            if read not in _REGISTRY:
                raise ValueError(f"step {entry.name!r} reads {read!r}, which no step is")
    ordered: list[Step] = []
    placed: set[str] = set()
    while len(ordered) < len(_REGISTRY):
        ready = sorted(
            name
            for name, entry in _REGISTRY.items()
            if name not in placed and placed.issuperset(entry.reads)
        )
        if not ready:
            left = sorted(set(_REGISTRY) - placed)
            raise ValueError(f"steps {left} read each other in a circle")
        ordered.append(_REGISTRY[ready[0]])
        placed.add(ready[0])
    return ordered


def get_step(name: str) -> Step:
    """The step named `name`; a UserError listing the steps when there is none."""
    for entry in steps():
        if entry.name == name:
            return entry
    raise UserError(f"unknown step {name!r}; steps: {', '.join(s.name for s in steps())}")
