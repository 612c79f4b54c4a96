"""`fcsft run`: the registered steps in order, each a stage over the run directory, resumable.

Each step reads what the steps before it wrote; a stage whose marker matches its config and
input is skipped, and one cut off midway resumes (see `fcsft.runner.run`). Models are opened
by role from `models:` with one response cache per run, so a re-run costs nothing. A step
gets a `StepContext` (the `fcsft.step.Context` the runner gives): models by role, tools, its
config section and its inputs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcsft.config import ProjectConfig
from fcsft.errors import UserError
from fcsft.models.config import ModelConfig
from fcsft.runner.executors import executor_for
from fcsft.runner.lock import run_dir_lock
from fcsft.runner.run import Executor, run_stage
from fcsft.stage import OnProgress, Stage, Workplace
from fcsft.step import Context, Step, get_step, steps


@dataclass
class Run:
    """One run of a project: what its steps share (model clients, the response cache)."""

    config: ProjectConfig
    base_dir: Path
    on_stage: Callable[[str, dict[str, Any]], None] = lambda name, stats: None
    on_progress: Callable[[str], OnProgress | None] = lambda name: None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, tuple[Any, str]] = field(default_factory=dict)  # by role, opened once
    workplace: Workplace | None = None
    """In a worker process (`Stage.worker`): what it uses in place of the run directory."""

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    def model(self, role: str) -> tuple[Any, str]:
        """(client, model name) for a role of `models:`, opened once per run."""
        if role not in self.clients:
            self.clients[role] = self._open(role)
        return self.clients[role]

    @functools.cached_property
    def cache(self):
        """One response cache per run: every role's client shares it (and its writer thread)."""
        from fcsft.models.cache import ResponseCache

        if self.workplace is not None:
            return self.workplace.replies
        return ResponseCache(self.run_dir / "cache.sqlite")

    async def release_clients(self) -> None:
        """Close the clients' connections, bound to the event loop of the stage now ending (the
        next stage's loop opens new ones) and commit the cached replies."""
        for client, _ in self.clients.values():
            await client.close()

    def _open(self, role: str) -> tuple[Any, str]:
        from fcsft.models.client import Client
        from fcsft.models.registry import anchored, load_model

        settings: ModelConfig | None = self.config.models.get(role)
        if settings is None:
            raise UserError(
                f"models.{role} is not configured; add e.g. "
                f"`models: {{{role}: {{uri: local:smollm2}}}}` to project.yaml"
            )
        provider = load_model(
            anchored(settings.uri, self.base_dir),
            api_key_env=settings.api_key_env,
            timeout_s=settings.timeout_s,
            max_retries=settings.max_retries,
            **({"precision": settings.precision} if settings.uri.startswith("local:") else {}),
        )
        price = {provider.name: settings.price.model_dump()}
        client = Client(provider, concurrency=settings.concurrency, cache=self.cache, prices=price)
        return client, provider.name

    def context(self, step: Step) -> StepContext:
        return StepContext(self, step)

    def step(self, step: Step) -> dict[str, Any]:
        """Build the step's stage and run it; a stage that ends with nothing to hand on stops
        the run (unless the step `may_be_empty`)."""
        ctx = self.context(step)
        built = step.build(ctx)
        stage, inputs = built if isinstance(built, tuple) else (built, ctx.inputs)
        return self.stage(stage, inputs, ctx.chosen_executor, may_be_empty=step.may_be_empty)

    def stage(
        self,
        stage: Stage,
        inputs: list[Path],
        executor: Executor | None = None,
        *,
        may_be_empty: bool = False,
    ) -> dict[str, Any]:
        """Run a stage of this run (see `step`)."""
        for path in inputs:
            if not path.exists():
                raise UserError(
                    f"stage {stage.name} reads {path}, which does not exist yet: run the "
                    f"steps before it first (fcsft run --until {path.parent.name})"
                )
        own = stage.close

        async def close() -> None:
            try:
                if own is not None:
                    await own()
            finally:
                await self.release_clients()

        stage.close = close
        stats = run_stage(stage, self.run_dir, inputs, self.on_progress(stage.name), executor)
        self.results[stage.name] = stats
        if stage.name == "validate":
            self._record_lessons(stats)
        self.on_stage(stage.name, stats)
        if "stopped" in stats:
            raise UserError(f"stage {stage.name} stopped: {stats['stopped']}; run again to resume")
        if not stats.get("out") and not may_be_empty:
            raise UserError(nothing_produced(stage.name, stats, self.run_dir / stage.name))
        return stats

    def lessons(self) -> list[str]:
        """The teacher lessons of `memory/teacher.md` beside project.yaml, in order."""
        from fcsft.memory import MemoryWriter

        if not (self.base_dir / "memory" / "teacher.md").exists():
            return []
        return [m.text for m in MemoryWriter(self.base_dir / "memory").read("teacher")]

    def _record_lessons(self, stats: dict[str, Any]) -> None:
        """Add this generate + validate attempt to the lessons history; once lessons changed
        the teacher, the history goes into the validate results for the run's summary."""
        from fcsft.memory.history import history_lines, record_attempt

        lessons = self.config.generate.lessons + self.lessons()
        history = record_attempt(self.run_dir, lessons)
        if len(history) > 1:
            stats["lessons_history"] = history_lines(history)


def open_run(project: ProjectConfig, base_dir: Path) -> Run:
    """A Run without callbacks: what a worker process opens for itself (picklable)."""
    return Run(project, base_dir)


@dataclass
class StepContext:
    """What one step gets: the run's models and tools, its section and its inputs."""

    run: Run
    step: Step
    chosen_executor: Executor | None = None

    @property
    def config(self) -> ProjectConfig:
        return self.run.config

    @property
    def base_dir(self) -> Path:
        return self.run.base_dir

    @property
    def run_dir(self) -> Path:
        return self.run.run_dir

    @property
    def section(self) -> Any:
        """The section by its key in project.yaml (`validate`, whose attribute is `validate_`)."""
        if self.step.config is None:
            return None
        fields = type(self.config).model_fields
        by_key = {info.alias or name: name for name, info in fields.items()}
        if self.step.config not in by_key:
            raise UserError(
                f"step {self.step.name} reads config section {self.step.config!r}, "
                f"which project.yaml has not; sections: {', '.join(by_key)}"
            )
        return getattr(self.config, by_key[self.step.config])

    @property
    def inputs(self) -> list[Path]:
        return [self.run_dir / name / "out.jsonl" for name in self.step.reads]

    def model(self, role: str) -> tuple[Any, str]:
        return self.run.model(role)

    async def tools(self, role: str, client: Any) -> Any:
        from fcsft.tools import Toolbox

        return await Toolbox.open(
            self.config.tools,
            base_dir=self.base_dir,
            models={role: client},
            cache_dir=(self.run.workplace.scratch if self.run.workplace else self.run_dir)
            / "tool-cache",
        )

    def executor(self, kind: str, address: str | None = None, workers: int | None = None) -> Any:
        self.chosen_executor = executor_for(
            kind, address=address, workers=workers, cache=self.run.cache
        )
        return self.chosen_executor

    def detached(self) -> Callable[[Workplace], Context]:
        return functools.partial(_detached, self.config, self.base_dir, self.step.name)

    async def close(self) -> None:
        await self.run.release_clients()
        self.run.cache.close()

    def lessons(self) -> list[str]:
        return self.run.lessons()

    def live_lessons(self) -> Any:
        settings = self.config.memory
        if not settings.enabled:
            return None
        from fcsft.runner.lessons import RunLessons

        return RunLessons(
            settings,
            self.config.validate_,
            self.run_dir / self.step.name / "memory",
            self.inputs,
            self.model(settings.model) if settings.model else None,
        )

    def run_stage(
        self,
        stage: Stage,
        run_dir: Path,
        inputs: list[Path],
        on_progress: OnProgress | None = None,
    ) -> dict[str, Any]:
        return run_stage(stage, run_dir, inputs, on_progress)

    def on_progress(self, name: str) -> OnProgress | None:
        return self.run.on_progress(name)


def _detached(project: ProjectConfig, base_dir: Path, name: str, place: Workplace) -> StepContext:
    return Run(project, base_dir, workplace=place).context(get_step(name))


def nothing_produced(name: str, stats: dict[str, Any], directory: Path) -> str:
    """The line that stops a run at a stage that kept no record."""
    if not stats.get("in"):
        return f"stage {name} produced nothing: its input is empty"
    reasons = ", ".join(f"{rule} {n}" for rule, n in list(stats.get("reasons", {}).items())[:3])
    line = (
        f"stage {name} produced nothing from {stats['in']} inputs: {stats.get('rejected', 0)} "
        f"rejected ({reasons or 'no reasons'}); see {directory / 'rejected.jsonl'}"
    )
    if stats.get("retry"):
        line += f"; the {stats['retry']} that failed on the model are retried by the next run"
    return line


def run_pipeline(run: Run, start: str | None = None, until: str | None = None) -> dict[str, Any]:
    """Run the registered steps from `start` to `until` (inclusive), in order; a step run by a
    person (`manual`) is passed over."""
    order = [entry.name for entry in steps()]
    first = order.index(get_step(start).name) if start else 0
    last = order.index(get_step(until).name) if until else len(order) - 1
    with run_dir_lock(run.run_dir):
        for entry in steps()[first : last + 1]:
            if entry.manual is None:
                run.step(entry)
    return run.results
