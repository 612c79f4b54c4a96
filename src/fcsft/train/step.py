"""The train step: fine-tune on the curated records (not the OpenAI export: they keep the
thinking OpenAI has no field for).

`out.jsonl` lists each conversation trained on by id, with its tokens and whether it was held
out for the validation loss; one with no assistant token within `train.max_length` is in
`rejected.jsonl` under `train.too_long`. The model is in `model/`, checkpoints in
`checkpoints/`; a killed run resumes from the last one.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from fcsft.records import Verdict
from fcsft.stage import Outcome, Stage
from fcsft.step import Context, step
from fcsft.train import run
from fcsft.train.run import TrainConfig

TOO_LONG = "train.too_long"


def train_stage(config: TrainConfig, directory: Path) -> Stage:
    """The stage that trains into `directory` (its name is the stage's)."""
    summary: dict[str, Any] = {}
    stopping = threading.Event()

    def process(paths: list[Path]) -> list[tuple[str, list[Outcome]]]:
        [data] = paths
        result, prepared = run.train(config, data, directory, stop=stopping)
        summary.update({k: v for k, v in result.items() if k not in {"losses", "config"}})
        pairs = []
        for rendered in prepared.rendered:
            tokens = len(rendered.example.input_ids)
            if rendered.fits:
                part = "val" if rendered.id in prepared.val_ids else "train"
                record = {"id": rendered.id, "tokens": tokens, "part": part}
                pairs.append((rendered.id, [Outcome(record)]))
                continue
            verdict = Verdict(
                stage=directory.name,
                rule=TOO_LONG,
                passed=False,
                reason=f"no assistant token within train.max_length={config.max_length}; "
                "raise it to train on this conversation",
            )
            pairs.append((rendered.id, [Outcome(rendered.record, [verdict])]))
        return pairs

    return Stage(
        directory.name,
        process,
        config.model_dump(mode="json"),
        whole=True,
        files=True,
        report=lambda _: summary,
        stopping=stopping,
    )


@step("train", reads=("curate",), config="train")
def train(ctx: Context) -> Stage:
    return train_stage(ctx.section, ctx.run_dir / "train")
