"""The curate step: over the reviewed trajectories when a review was applied, else over the
validated ones (the review reads validate, so it comes first in the run order)."""

from __future__ import annotations

from pathlib import Path

from fcsft.curate.stage import curate_stage
from fcsft.stage import Stage
from fcsft.step import Context, step


@step("curate", reads=("validate", "review"), config="curate")
def curate(ctx: Context) -> tuple[Stage, list[Path]]:
    config = ctx.section.model_copy(
        update={
            "general": [ctx.base_dir / p for p in ctx.section.general],
            "decontaminate": [ctx.base_dir / p for p in ctx.section.decontaminate],
        }
    )
    reviewed = ctx.run_dir / "review" / "out.jsonl"
    source = reviewed if reviewed.exists() else ctx.run_dir / "validate" / "out.jsonl"
    return curate_stage(config), [source]
