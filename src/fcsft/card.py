"""The dataset card: DATASET.md with plots, every number read from the stages' own stats."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

from fcsft.jsonl import read_jsonl


def _stats(run_dir: Path, stage: str) -> dict[str, Any]:
    path = run_dir / stage / "stats.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _plot_bars(path: Path, title: str, series: dict[str, dict[str, float]], horizontal=False):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({key for values in series.values() for key in values})
    fig, ax = plt.subplots(figsize=(6.4, max(2.4, 0.35 * len(labels) + 1.2)))
    width = 0.8 / max(1, len(series))
    for k, (name, values) in enumerate(series.items()):
        positions = [i + k * width for i in range(len(labels))]
        heights = [values.get(label, 0) for label in labels]
        if horizontal:
            ax.barh(positions, heights, height=width, label=name)
        else:
            ax.bar(positions, heights, width=width, label=name)
    ticks = [i + width * (len(series) - 1) / 2 for i in range(len(labels))]
    if horizontal:
        ax.set_yticks(ticks, labels)
        ax.invert_yaxis()
    else:
        ax.set_xticks(ticks, labels)
    if len(series) > 1:
        ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_card(run_dir: Path, out: Path, config: dict[str, Any], name: str) -> Path:
    """Write DATASET.md and its PNG plots into `out`; returns the card's path."""
    validate, curate = _stats(run_dir, "validate"), _stats(run_dir, "curate")
    report = curate.get("report", {})
    records = list(read_jsonl(run_dir / "curate" / "out.jsonl"))
    steps = Counter()
    for record in records:
        if record["meta"].get("split") == "train":
            steps[str(sum(m["role"] == "assistant" for m in record["messages"]))] += 1
    plots = {
        "tools.png": (
            "Calls per tool, before and after balancing",
            {"before": report.get("tools_before", {}), "after": report.get("tools_after", {})},
            False,
        ),
        "steps.png": ("Assistant steps per training trajectory", {"train": dict(steps)}, False),
        "rejections.png": (
            "Rejections by reason",
            {"count": {**validate.get("reasons", {}), **curate.get("reasons", {})}},
            True,
        ),
    }
    out.mkdir(parents=True, exist_ok=True)
    for file, (title, series, horizontal) in plots.items():
        _plot_bars(out / file, title, series, horizontal)
    split = report.get("split", {})
    general = report.get("general", {})
    decon = report.get("decontamination", {})
    lines = [
        f"# {name}: function-calling SFT dataset",
        "",
        "Made by fcsft; every number below is read from the stages' `stats.json`.",
        "",
        "## Size",
        "",
        "| split | records | families |",
        "|---|---|---|",
        f"| train | {split.get('train', 0)} | {report.get('families', {}).get('train', 0)} |",
        f"| test | {split.get('test', 0)} | {report.get('families', {}).get('test', 0)} |",
        "",
        f"Validation checked {validate.get('in', 0)} trajectories: {validate.get('out', 0)} kept, "
        f"{validate.get('rejected', 0)} rejected. Curation took {curate.get('in', 0)} in and kept "
        f"{curate.get('out', 0)} (general data included), rejecting {curate.get('rejected', 0)}.",
        "",
        "## Tool distribution",
        "",
        "![calls per tool](tools.png)",
        "",
        "| tool | before | after | target share |",
        "|---|---|---|---|",
        *[
            f"| {tool} | {report.get('tools_before', {}).get(tool, 0)} | "
            f"{report.get('tools_after', {}).get(tool, 0)} | {share:.2f} |"
            for tool, share in report.get("tools_target", {}).items()
        ],
        "",
        "Under-represented (need more seeds): "
        + (", ".join(report.get("under_represented", [])) or "none")
        + ".",
        "",
        "## Steps per trajectory",
        "",
        "![steps](steps.png)",
        "",
        "## Rejections",
        "",
        "![rejections](rejections.png)",
        "",
        "| reason | count |",
        "|---|---|",
        *[
            f"| {code} | {count} |"
            for code, count in {**validate.get("reasons", {}), **curate.get("reasons", {})}.items()
        ],
        "",
        "## General instruction mix",
        "",
        f"{general.get('used', 0)} general conversations of {general.get('available', 0)} "
        f"available ({general.get('wanted', 0)} wanted): {general.get('ratio', 0.0):.1%} of the "
        "training split.",
        "",
        "## Decontamination",
        "",
        f"Training candidates sharing a {decon.get('ngram', '?')}-word n-gram with an evaluation "
        "set were dropped: "
        + (", ".join(f"{k}: {v}" for k, v in decon.get("hits", {}).items()) or "none")
        + ".",
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
