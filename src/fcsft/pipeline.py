"""`fcsft run`: seeds -> expand -> generate -> validate -> curate -> export -> train, resumable.

Each stage reads what the one before wrote in the run directory; a stage whose marker matches
its config and input is skipped, and one cut off midway resumes (see `fcsft.stage`). Models
are opened by role from `models:` with one response cache per run, so a re-run costs nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcsft.config import ModelConfig, ProjectConfig
from fcsft.errors import UserError
from fcsft.executors import executor_for
from fcsft.generate.stage import GenerateConfig
from fcsft.jsonl import read_jsonl, write_json, write_jsonl
from fcsft.memory.history import history_lines, record_attempt
from fcsft.run_lock import run_dir_lock
from fcsft.stage import Executor, Progress, Stage, file_hash, run_stage

STAGES = ("seeds", "expand", "generate", "validate", "curate", "export", "train", "evaluate")
STEP_OF = {"combine": "expand", "tasks": "expand"}
"""The pipeline stage that writes each run-directory folder not named after a stage."""


@dataclass
class Run:
    config: ProjectConfig
    base_dir: Path
    on_stage: Callable[[str, dict[str, Any]], None] = lambda name, stats: None
    on_progress: Callable[[str], Callable[[Progress], None] | None] = lambda name: None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, tuple[Any, str]] = field(default_factory=dict)  # by role, opened once

    @property
    def run_dir(self) -> Path:
        return self.config.run_dir

    def model(self, role: str):
        """(client, model name) for a role of `models:`, opened once per run."""
        if role not in self.clients:
            self.clients[role] = self._open(role)
        return self.clients[role]

    @functools.cached_property
    def cache(self):
        """One response cache per run: every role's client shares it (and its writer thread)."""
        from fcsft.models.cache import ResponseCache

        return ResponseCache(self.run_dir / "cache.sqlite")

    async def release_clients(self) -> None:
        """Close the clients' connections, bound to the event loop of the stage now ending (the
        next stage's loop opens new ones) and commit the cached replies."""
        for client, _ in self.clients.values():
            await client.close()

    def _open(self, role: str):
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
        client = Client(
            provider,
            concurrency=settings.concurrency,
            cache=self.cache,
            prices=price,
        )
        return client, provider.name

    def stage(
        self,
        stage: Stage,
        inputs: list[Path],
        executor: Executor | None = None,
        *,
        may_be_empty: bool = False,
    ) -> dict[str, Any]:
        """Run a stage of this run; a stage that ends with nothing to hand on stops the run
        (unless `may_be_empty`: combinations are optional, say)."""
        for path in inputs:
            if not path.exists():
                before = STEP_OF.get(path.parent.name, path.parent.name)
                raise UserError(
                    f"stage {stage.name} reads {path}, which does not exist yet: run the "
                    f"stages before it first (fcsft run --until {before})"
                )
        stage.close = stage.close or self.release_clients
        stats = run_stage(stage, self.run_dir, inputs, self.on_progress(stage.name), executor)
        self.results[stage.name] = stats
        self.on_stage(stage.name, stats)
        if "stopped" in stats:
            raise UserError(f"stage {stage.name} stopped: {stats['stopped']}; run again to resume")
        if not stats.get("out") and not may_be_empty:
            raise UserError(nothing_produced(stage.name, stats, self.run_dir / stage.name))
        return stats


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


def _seeds(run: Run) -> None:
    from fcsft.seeds.importers import import_seeds, mine_logs

    seeds = run.config.seeds
    files = [run.base_dir / p for p in seeds.files]
    logs = [run.base_dir / p for p in seeds.logs]
    if not files and not logs:
        raise UserError("seeds.files and seeds.logs are both empty: nothing to start from")
    imported = import_seeds(files, seeds.source, seeds.domain)
    mined = mine_logs(logs, seeds.domain, pii=seeds.pii) if logs else None
    chosen = imported.seeds + (mined.seeds if mined else [])
    problems = imported.problems + (mined.problems if mined else [])
    if not chosen:
        named = ", ".join(str(p) for p in files + logs)
        first = f"; the first of {len(problems)} bad rows: {problems[0]}" if problems else ""
        raise UserError(f"no seed to start from in {named}{first}")
    if seeds.limit is not None:
        chosen = chosen[: seeds.limit]
    directory = run.run_dir / "seeds"
    write_jsonl(directory / "out.jsonl", (s.to_json() for s in chosen))
    stats = {
        "stage": "seeds",
        "in": len(imported.seeds) + len(imported.problems),
        "out": len(chosen),
        "rejected": len(problems),
        "problems": problems[:50],
        "scrubbed": dict(mined.scrubbed) if mined else {},
        "input_hash": file_hash(files + logs),
    }
    write_json(directory / "stats.json", stats)
    run.results["seeds"] = stats
    run.on_stage("seeds", stats)


def _expand(run: Run) -> None:
    from fcsft.expand.pipeline import combine_stage, expand_stage, tasks_stage

    config = run.config.expand
    client, name = run.model(config.model)
    seeds = run.run_dir / "seeds" / "out.jsonl"
    run.stage(expand_stage(config, client, name), [seeds])
    n_seeds = sum(1 for _ in read_jsonl(seeds))
    run.stage(
        combine_stage(config, client, name, n_seeds),
        [run.run_dir / "expand" / "out.jsonl"],
        may_be_empty=True,
    )
    run.stage(
        tasks_stage(config, seeds),
        [run.run_dir / "expand" / "out.jsonl", run.run_dir / "combine" / "out.jsonl"],
    )


def _teacher_config(run: Run) -> GenerateConfig:
    """The generate config with the teacher lessons of `memory/teacher.md` added."""
    from fcsft.memory import MemoryWriter

    config = run.config.generate
    if (run.base_dir / "memory" / "teacher.md").exists():
        lessons = [m.text for m in MemoryWriter(run.base_dir / "memory").read("teacher")]
        config = config.model_copy(update={"lessons": config.lessons + lessons})
    return config


def _generate(run: Run) -> None:
    from fcsft.generate.stage import generate_stage

    config = _teacher_config(run)
    executor = executor_for(config.executor, address=config.ray_address, workers=config.ray_workers)
    client, name = run.model(config.model)
    # The tools are opened here too: the stage's key names them, whoever runs it.
    tools = asyncio.run(_open_tools(run, config.model, client))
    try:
        stage = generate_stage(config, client, name, tools)
        stage.worker = functools.partial(generate_worker, run.config, run.base_dir, config)
        run.stage(stage, [run.run_dir / "tasks" / "out.jsonl"], executor)
    finally:
        asyncio.run(tools.aclose())


@contextlib.asynccontextmanager
async def generate_worker(
    project: ProjectConfig, base_dir: Path, config: GenerateConfig
) -> AsyncIterator[Stage]:
    """The generate stage as a worker process (`executor: ray`) opens it for itself: its own
    client on the run's response cache file, and its own tools."""
    from fcsft.generate.stage import generate_stage

    run = Run(project, base_dir)
    client, name = run.model(config.model)
    tools = await _open_tools(run, config.model, client)
    try:
        yield generate_stage(config, client, name, tools)
    finally:
        await tools.aclose()
        await client.close()
        run.cache.close()


async def _open_tools(run: Run, role: str, client: Any):
    from fcsft.tools import Toolbox

    return await Toolbox.open(
        run.config.tools,
        base_dir=run.base_dir,
        models={role: client},
        cache_dir=run.run_dir / "tool-cache",
    )


def _validate(run: Run) -> None:
    from fcsft.validate.stage import validate_stage

    config = run.config.validate_
    judge, judge_name = run.model(config.judge.model) if config.judge else (None, "")
    stats = run.stage(
        validate_stage(config, judge=judge, judge_name=judge_name),
        [run.run_dir / "generate" / "out.jsonl"],
    )
    history = record_attempt(run.run_dir, _teacher_config(run).lessons)
    if len(history) > 1:  # shown once lessons changed the teacher
        stats["lessons_history"] = history_lines(history)


def _curate(run: Run) -> None:
    from fcsft.curate.stage import curate_stage

    config = run.config.curate.model_copy(
        update={
            "general": [run.base_dir / p for p in run.config.curate.general],
            "decontaminate": [run.base_dir / p for p in run.config.curate.decontaminate],
        }
    )
    reviewed = run.run_dir / "review" / "out.jsonl"
    source = reviewed if reviewed.exists() else run.run_dir / "validate" / "out.jsonl"
    run.stage(curate_stage(config), [source])


def _export(run: Run) -> None:
    from fcsft.card import write_card
    from fcsft.export import export_dataset

    out = run.run_dir / "export"
    result = export_dataset(
        run.run_dir / "curate" / "out.jsonl", out, run.config.export, run.config.name
    )
    card = write_card(
        run.run_dir,
        out,
        run.config.model_dump(mode="json", by_alias=True),
        run.config.name,
        result,
        run.base_dir,
    )
    result["card"] = str(card)
    write_json(out / "stats.json", result)
    run.results["export"] = result
    run.on_stage("export", result)


def _train(run: Run) -> None:
    from fcsft.train.run import train

    # The curated records, not the OpenAI export: they keep the thinking OpenAI has no field for.
    data = run.run_dir / "curate" / "out.jsonl"
    summary = train(run.config.train, data, run.run_dir / "train")
    result = {k: v for k, v in summary.items() if k not in {"losses", "config"}}
    run.results["train"] = result
    run.on_stage("train", result)


def _evaluate(run: Run) -> None:
    from fcsft.evaluate.run import evaluate_run

    result = evaluate_run(
        run.run_dir,
        run.config.evaluate,
        run.run_dir / "train" / "model",
        run.config.curate.held_out_tools,
        run.on_progress,
    )
    run.results["evaluate"] = result
    run.on_stage("evaluate", result)


STEPS: dict[str, Callable[[Run], None]] = {
    "seeds": _seeds,
    "expand": _expand,
    "generate": _generate,
    "validate": _validate,
    "curate": _curate,
    "export": _export,
    "train": _train,
    "evaluate": _evaluate,
}


def run_pipeline(run: Run, start: str | None = None, until: str | None = None) -> dict[str, Any]:
    """Run the stages from `start` to `until` (inclusive), in order."""
    for name in (start, until):
        if name is not None and name not in STAGES:
            raise UserError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    first = STAGES.index(start) if start else 0
    last = STAGES.index(until) if until else len(STAGES) - 1
    with run_dir_lock(run.run_dir):
        for name in STAGES[first : last + 1]:
            STEPS[name](run)
    return run.results
