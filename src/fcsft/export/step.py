"""The export step: the curated records in the configured formats, and the dataset card.

`out.jsonl` lists each exported record by id with its split and line in the split's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fcsft.export import export_dataset
from fcsft.export.card import write_card
from fcsft.jsonl import read_jsonl
from fcsft.stage import Outcome, Stage
from fcsft.step import Context, step


@step("export", reads=("curate",), config="export")
def export(ctx: Context) -> Stage:
    out = ctx.run_dir / "export"
    result: dict[str, Any] = {}

    def process(paths: list[Path]) -> list[tuple[str, list[Outcome]]]:
        [curated] = paths
        result.update(export_dataset(curated, out, ctx.section, ctx.config.name))
        result["card"] = str(
            write_card(
                ctx.run_dir,
                out,
                ctx.config.model_dump(mode="json", by_alias=True),
                ctx.config.name,
                result,
                ctx.base_dir,
            )
        )
        lines: dict[str, int] = {}
        pairs = []
        for record in read_jsonl(curated):
            ident, split = record["meta"]["id"], record["meta"]["split"]
            lines[split] = lines.get(split, 0) + 1
            pairs.append((ident, [Outcome({"id": ident, "split": split, "line": lines[split]})]))
        return pairs

    return Stage(
        "export",
        process,
        # The card shows the whole project config, so any change to it writes the card again.
        ctx.config.model_dump(mode="json", by_alias=True),
        whole=True,
        files=True,
        report=lambda _: result,
    )
