"""The README's quickstart paragraph, written from the quickstart's own files.

    python examples/finance/summary.py [RUN_DIR]     (default runs/finance)

With RUN_DIR, keeps what the paragraph is written from in examples/finance/results/
(committed: the comparison of base and tuned, `evaluate/compare.json`, and each stage's wall
time from its `stats.json`), then rewrites the paragraph between the README's quickstart
markers from that copy. Without a run directory it rewrites the paragraph from the committed
copy. Every figure in the paragraph is read from those files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fcsft.evaluate.report import difference_text, headline_metric
from fcsft.files import with_block, write_text
from fcsft.jsonl import write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parents[1] / "README.md"
BEGIN, END = (
    "<!-- quickstart: written by examples/finance/summary.py -->",
    "<!-- quickstart end -->",
)
LAYERS = {"standard": "standard", "ood": "out of distribution", "adversarial": "should not call"}
NOT_RUN = "No quickstart run has been committed yet (examples/finance/results/ is empty)."
STAGES = (
    "seeds",
    "expand",
    "combine",
    "tasks",
    "generate",
    "validate",
    "curate",
    "train",
    "evaluate",
)


def keep(run_dir: Path) -> None:
    """Copy what the paragraph is written from out of a run directory."""
    compare = json.loads((run_dir / "evaluate" / "compare.json").read_text())
    wall = {
        stage: json.loads((run_dir / stage / "stats.json").read_text())["wall_s"]
        for stage in STAGES
        if (run_dir / stage / "stats.json").exists()
    }
    RESULTS.mkdir(exist_ok=True)
    write_json(RESULTS / "compare.json", compare)
    write_json(RESULTS / "wall_s.json", wall)


def _cell(name: str, cell: dict[str, Any]) -> str:
    verdict = "significant" if cell["p_value"] < 0.05 else "not significant"
    return (
        f"{name} {cell['base']['value']:.0%} -> {cell['tuned']['value']:.0%} (n = {cell['n']}, "
        f"{difference_text(cell)}, McNemar p = {cell['p_value']:.2g}, {verdict})"
    )


def paragraph(compare: dict[str, Any], wall: dict[str, float]) -> str:
    parts = []
    for layer, name in LAYERS.items():
        metrics = compare["layers"].get(layer)
        if metrics:
            metric = headline_metric(metrics)
            parts.append(_cell(f"{name} ({metric.replace('_', '-')})", metrics[metric]))
    live = compare.get("live")
    if live and live.get("metrics"):
        parts.append(_cell("live task success", live["metrics"]["success"]))
    minutes = sum(wall.values()) / 60
    stages = ", ".join(
        f"{stage} {wall[stage] / 60:.1f}"
        for stage in ("generate", "train", "evaluate")
        if stage in wall
    )
    return (
        f"What the last committed quickstart run showed, base -> tuned on its held-out layers: "
        f"{'; '.join(parts)}. The pipeline took {minutes:.0f} min on this project's 2-core "
        f"machine ({stages} min), installation and the one-time model conversion not included."
    )


def main(run_dir: Path | None) -> str:
    if run_dir is not None:
        keep(run_dir)
    if (RESULTS / "compare.json").exists():
        compare = json.loads((RESULTS / "compare.json").read_text())
        text = paragraph(compare, json.loads((RESULTS / "wall_s.json").read_text()))
    else:
        text = NOT_RUN
    write_text(README, with_block(README.read_text(), BEGIN, END, text, str(README)))
    return text


if __name__ == "__main__":
    print(main(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
