"""The expansion steps: `expand` (rewrites and variations per seed), `combine` (multi-step
tasks; may come out empty) and `tasks` (the union, deduplicated)."""

from __future__ import annotations

from fcsft.expand.pipeline import combine_stage, expand_stage, tasks_stage
from fcsft.jsonl import read_jsonl
from fcsft.stage import Stage
from fcsft.step import Context, step


@step("expand", reads=("seeds",), config="expand")
def expand(ctx: Context) -> Stage:
    """Each seed as a task, with its rewrites and variations."""
    client, name = ctx.model(ctx.section.model)
    return expand_stage(ctx.section, client, name)


@step("combine", reads=("expand",), config="expand", may_be_empty=True)
def combine(ctx: Context) -> Stage:
    """Multi-step tasks combined from the expanded ones (may come out empty)."""
    client, name = ctx.model(ctx.section.model)
    n_seeds = sum(1 for _ in read_jsonl(ctx.run_dir / "seeds" / "out.jsonl"))
    return combine_stage(ctx.section, client, name, n_seeds)


@step("tasks", reads=("expand", "combine"), config="expand")
def tasks(ctx: Context) -> Stage:
    """The expanded and combined tasks together, deduplicated."""
    return tasks_stage(ctx.section, ctx.run_dir / "seeds" / "out.jsonl")
