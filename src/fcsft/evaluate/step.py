"""The evaluate step: the run's test layers asked of the base and the trained model, compared.

`out.jsonl` holds each item both models answered, with both scores; an item a model failed
on (the model, not the answer: nothing to score) is in `rejected.jsonl` under
`evaluate.model_error`. The reports are in `base/`, `tuned/` and `compare.html`. With `live:`, the
live layer (fcsft.evaluate.live) runs against the project's tools, opened here as generate
opens them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fcsft.evaluate.run import evaluate_run
from fcsft.jsonl import read_jsonl
from fcsft.records import Verdict
from fcsft.stage import Outcome, Stage
from fcsft.step import Context, step

SIDES = ("base", "tuned")


def _outcomes(directory: Path) -> list[tuple[str, list[Outcome]]]:
    scores = {
        side: {row["id"]: row for row in read_jsonl(directory / side / "scores.jsonl")}
        for side in SIDES
    }
    pairs = []
    for item in read_jsonl(directory / "base" / "items.jsonl"):
        ident = item["id"]
        failed = [side for side in SIDES if ident not in scores[side]]
        if not failed:
            record = {"id": ident, "layer": item.get("layer")} | {
                side: scores[side][ident] for side in SIDES
            }
            pairs.append((ident, [Outcome(record)]))
            continue
        reason = " and ".join(
            f"the {side} model failed on it (see {directory / side / 'predictions'})"
            for side in failed
        )
        verdict = Verdict(
            stage="evaluate", rule="evaluate.model_error", passed=False, reason=reason
        )
        pairs.append((ident, [Outcome(item, [verdict])]))
    return pairs


async def _tools(ctx: Context) -> Any:
    """The project's tools as generate opens them, its teacher answering simulated ones: the
    live layer runs the model under test in the environment its data was made in."""
    role = ctx.config.generate.model
    client, _ = ctx.model(role)
    return await ctx.tools(role, client)


@step("evaluate", reads=("curate", "train"), config="evaluate")
def evaluate(ctx: Context) -> tuple[Stage, list[Path]]:
    directory = ctx.run_dir / "evaluate"
    result: dict[str, Any] = {}
    sides = ctx.section.sides(ctx.config.models, ctx.run_dir / "train" / "model")

    def process(_: list[Path]) -> list[tuple[str, list[Outcome]]]:
        tools = asyncio.run(_tools(ctx)) if ctx.section.live else None
        try:
            result.update(
                evaluate_run(
                    ctx.run_dir,
                    ctx.section,
                    sides,
                    ctx.config.curate.held_out_tools,
                    ctx.run_stage,
                    ctx.on_progress,
                    tools,
                )
            )
        finally:
            if tools is not None:
                asyncio.run(tools.aclose())
        return _outcomes(directory)

    config = ctx.section.model_dump(mode="json") | {
        "held_out_tools": ctx.config.curate.held_out_tools,
        "models": {side: [settings.uri, settings.precision] for side, settings in sides.items()},
    }
    stage = Stage("evaluate", process, config, whole=True, files=True, report=lambda _: result)
    inputs = [ctx.run_dir / "curate" / "out.jsonl"]
    if ctx.section.model is None:  # the trained model, known by train's marker (config, data)
        inputs.append(ctx.run_dir / "train" / "_done.json")
    return stage, inputs
