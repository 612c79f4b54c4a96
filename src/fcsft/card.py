"""The dataset card: DATASET.md with plots, every number read from the stages' own stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fcsft.errors import UserError
from fcsft.export import SPLITS
from fcsft.jsonl import read_json_object, read_jsonl
from fcsft.plots import bars

# The stages that write stats.json, in the order they run.
STAGES = ("seeds", "expand", "combine", "tasks", "generate", "validate", "review", "curate")
_STEP = {"combine": "expand", "tasks": "expand"}  # the pipeline step that writes each


def _stats(run_dir: Path, stage: str) -> dict[str, Any]:
    path = run_dir / stage / "stats.json"
    if not path.exists():
        return {}
    stats = read_json_object(path)
    if stats is None:
        again = (
            f"fcsft review {run_dir} --apply"
            if stage == "review"
            else f"fcsft run --from {_STEP.get(stage, stage)}"
        )
        raise UserError(f"{path} is unreadable; write it again with: {again}")
    return stats


def _stages(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Stats of every stage that ran, in pipeline order."""
    found = {stage: _stats(run_dir, stage) for stage in STAGES}
    return {stage: stats for stage, stats in found.items() if stats}


def _steps(run_dir: Path) -> dict[int, dict[str, int]]:
    """Assistant turns per tool trajectory -> count per split (general conversations left out)."""
    steps: dict[str, Counter] = {split: Counter() for split in SPLITS}
    for record in read_jsonl(run_dir / "curate" / "out.jsonl"):
        meta = record["meta"]
        if meta.get("how") != "general":
            steps[meta["split"]][sum(m["role"] == "assistant" for m in record["messages"])] += 1
    return {
        n: {split: steps[split][n] for split in SPLITS}
        for n in sorted(set().union(*steps.values()))
    }


def _table(header: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> list[str]:
    lines = [f"| {' | '.join(str(cell) for cell in row)} |" for row in rows]
    if not lines:
        return ["None."]
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header), *lines]


def write_card(run_dir: Path, out: Path, config: dict[str, Any], name: str) -> Path:
    """Write DATASET.md and its PNG plots into `out`; returns the card's path."""
    stages = _stages(run_dir)
    validate, curate = stages.get("validate", {}), stages.get("curate", {})
    curate_reasons = curate.get("reasons", {})
    report = curate.get("report", {})
    split, families = report.get("split", {}), report.get("families", {})
    general, decon = report.get("general", {}), report.get("decontamination", {})
    sizes, hits = decon.get("sets", {}), decon.get("hits", {})
    target = report.get("tools_target", {})
    before = {tool: report.get("tools_before", {}).get(tool, 0) for tool in target}
    after = {tool: report.get("tools_after", {}).get(tool, 0) for tool in target}
    reasons = [
        (stage, code, count)
        for stage, stats in stages.items()
        for code, count in stats.get("reasons", {}).items()
    ]
    steps = _steps(run_dir)
    plots = {
        "tools.png": (
            "Calls per tool, before and after balancing",
            {"before": before, "after": after},
            False,
        ),
        "steps.png": (
            "Assistant steps per tool trajectory",
            {side: {str(n): counts[side] for n, counts in steps.items()} for side in SPLITS},
            False,
        ),
        "rejections.png": ("Rejections by reason", {"count": {c: n for _, c, n in reasons}}, True),
    }
    out.mkdir(parents=True, exist_ok=True)
    for file, (title, series, horizontal) in plots.items():
        bars(out / file, title, series, horizontal=horizontal, counts=True)
    lines = [
        f"# {name}: function-calling SFT dataset",
        "",
        "Made by fcsft. Every number below is read from the stages' `stats.json`, except the",
        "steps per trajectory, which are counted in `curate/out.jsonl`.",
        "",
        "## Size",
        "",
        *_table(
            ("split", "records", "tool families"),
            ((side, split.get(side, 0), families.get(side, 0)) for side in SPLITS),
        ),
        "",
        f"The training split includes {general.get('used', 0)} general conversations, which "
        "curate counts among its inputs and outputs.",
        "",
        *_table(
            ("stage", "in", "out", "rejected"),
            (
                (stage, stats.get("in", 0), stats.get("out", 0), stats.get("rejected", 0))
                for stage, stats in stages.items()
            ),
        ),
        "",
        "## Tool distribution",
        "",
        "Calls per tool in the training split, before and after balancing "
        f"({curate_reasons.get('curate.balanced_out', 0)} trajectories dropped).",
        "",
        "![calls per tool](tools.png)",
        "",
        *_table(
            ("tool", "before", "after", "target share"),
            ((tool, before[tool], after[tool], share) for tool, share in target.items()),
        ),
        "",
        "Under-represented (under half their target share; need more seeds): "
        + (", ".join(report.get("under_represented", [])) or "none")
        + ".",
        "",
        "## Steps per trajectory",
        "",
        "Assistant turns per tool trajectory (general conversations left out).",
        "",
        "![steps](steps.png)",
        "",
        *_table(
            ("assistant steps", *SPLITS),
            ((n, *(counts[side] for side in SPLITS)) for n, counts in steps.items()),
        ),
        "",
        "## Rejections",
        "",
        f"Validation checked {validate.get('in', 0)} trajectories: {validate.get('out', 0)} "
        f"kept, {validate.get('rejected', 0)} rejected. A record rejected for several reasons "
        "counts under each.",
        "",
        "![rejections](rejections.png)",
        "",
        *_table(("stage", "reason", "count"), reasons),
        "",
        "## General instruction mix",
        "",
        f"{general.get('used', 0)} general conversations of {general.get('available', 0)} "
        f"available ({general.get('wanted', 0)} wanted) make up "
        f"{100 * general.get('ratio', 0.0):.2f}% of the training split; "
        f"{len(general.get('problems', []))} lines could not be used.",
        "",
        "## Decontamination",
        "",
        f"Candidates sharing a {decon.get('ngram', '?')}-word n-gram with an evaluation set "
        f"are dropped: {curate_reasons.get('curate.contaminated', 0)} in all.",
        "",
        *_table(
            ("evaluation set", "questions", "overlapping candidates"),
            ((source, sizes.get(source, "?"), hits.get(source, 0)) for source in {**sizes, **hits}),
        ),
        "",
        "## Config",
        "",
        "```yaml",
        yaml.safe_dump(config, sort_keys=False).rstrip(),
        "```",
        "",
    ]
    card = out / "DATASET.md"
    card.write_text("\n".join(lines), encoding="utf-8")
    return card
