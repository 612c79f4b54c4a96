"""Write docs/results.md from the proof experiment's run directory (see run.sh).

    python examples/bfcl-smollm2/results.py runs/bfcl-smollm2 > docs/results.md

Every number comes from a file the commands wrote: compare.json for the scores, the stages'
stats.json for the data, train/fcsft.json for training. The comparisons' plots are copied next
to the page (docs/results-bfcl.png, docs/results-layers.png).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

from fcsft.evaluate.report import difference_text, headline_metric

DOCS = Path(__file__).resolve().parents[2] / "docs"
TARGET_GAIN = 0.20  # simple AST accuracy, tuned minus base
TARGET_IRRELEVANCE = 0.80  # the tuned model's accuracy at calling nothing


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def pct(cell: dict[str, Any]) -> str:
    low, high = cell["ci95"]
    return f"{cell['value']:.1%} [{low:.1%}, {high:.1%}]"


def row(name: str, metric: str, cell: dict[str, Any]) -> str:
    return (
        f"| {name} | {metric} | {cell['n']} | {pct(cell['base'])} | {pct(cell['tuned'])} | "
        f"{difference_text(cell)} | {cell['p_value']:.3g} |"
    )


def table(compare: dict[str, Any], metrics: tuple[str, ...]) -> list[str]:
    lines = [
        "| set | metric | n | base [95% CI] | tuned [95% CI] | difference [95% Newcombe] | "
        "McNemar p |",
        "|---|---|---|---|---|---|---|",
    ]
    for layer, cells in compare.get("layers", {}).items():
        if layer == "all":
            continue
        for metric in (headline_metric(cells), *metrics):
            if metric in cells and not lines[-1].startswith(f"| {layer} | {metric} "):
                lines.append(row(layer, metric, cells[metric]))
    return lines


def figure(compare_dir: Path, name: str) -> list[str]:
    """The comparison's bar chart, copied into docs/, as a markdown image (or nothing)."""
    plot = compare_dir / "compare.png"
    if not plot.exists():
        return []
    DOCS.mkdir(exist_ok=True)
    shutil.copyfile(plot, DOCS / name)
    return [f"![base vs tuned]({name})", ""]


def verdict(bfcl: dict[str, Any]) -> list[str]:
    """The issue's three targets, each with the figure that decides it."""
    layers, mmlu = bfcl.get("layers", {}), bfcl.get("mmlu", {})
    simple = layers.get("simple_python", {}).get("full_call")
    irrelevance = layers.get("irrelevance", {}).get("no_call")
    counted = mmlu.get(mmlu.get("counts") or "", None)
    checks = []
    if simple:
        gain = simple["difference"]
        checks.append(
            f"- simple AST accuracy gain >= {TARGET_GAIN:.0%}: {gain:+.1%} "
            f"({'met' if gain >= TARGET_GAIN else 'NOT met'})"
        )
    if irrelevance:
        kept = irrelevance["tuned"]["value"]
        checks.append(
            f"- irrelevance accuracy >= {TARGET_IRRELEVANCE:.0%} after tuning: {kept:.1%} "
            f"({'met' if kept >= TARGET_IRRELEVANCE else 'NOT met'})"
        )
    if counted:
        p = counted["p_value"]
        checks.append(
            f"- MMLU change not significant: {counted['difference']:+.1%}, McNemar p = {p:.3g} "
            f"({'met' if p >= 0.05 else 'NOT met'})"
        )
    return ["## Targets", "", *checks, ""] if checks else []


def main(run: Path) -> str:
    bfcl = load(run / "compare-bfcl" / "compare.json")
    layers = load(run / "compare-layers" / "compare.json")
    train = load(run / "train" / "model" / "fcsft.json")
    stats = {s: load(run / s / "stats.json") for s in ("validate", "curate", "general")}
    generate = [load(path) for path in sorted(run.glob("generate-*/stats.json"))]
    out = ["# Results: SmolLM2-135M before and after fcsft's data", ""]
    out += [
        "Produced by `examples/bfcl-smollm2/run.sh` on a 2-core CPU machine (no GPU); every "
        "number below is read from the files those commands wrote "
        "(`examples/bfcl-smollm2/results.py`).",
        "",
        *verdict(bfcl),
        "## BFCL (held-out categories, a seeded sample of 100 items each)",
        "",
        "Full-call accuracy is BFCL's AST accuracy, scored by fcsft's scorer (which agrees with "
        "BFCL's `ast_checker` on 24,315 of 24,316 pairs, see the README); on irrelevance the "
        "right move is to call nothing.",
        "",
        *table(bfcl, ("tool_selection", "parse_failure")),
        "",
        *figure(run / "compare-bfcl", "results-bfcl.png"),
    ]
    mmlu = bfcl.get("mmlu", {})
    if mmlu:
        out += [
            "## Forgetting: MMLU (200 questions, the same for both)",
            "",
            "| form | n | base | tuned | difference [95% Newcombe] | McNemar p |",
            "|---|---|---|---|---|---|",
        ]
        for form in ("letter", "cloze", "cloze_norm"):
            if form in mmlu:
                cell = mmlu[form]
                mark = " (counts)" if mmlu.get("counts") == form else ""
                out.append(
                    f"| {form}{mark} | {cell['n']} | {pct(cell['base'])} | {pct(cell['tuned'])} | "
                    f"{difference_text(cell)} | {cell['p_value']:.3g} |"
                )
        out += [
            "",
            "The form that counts is the first one on which the base model is above chance "
            "(25%): letter answers of a 135M model sit at chance and cannot show forgetting.",
            "",
        ]
    if layers:
        out += [
            "## fcsft's own three layers (from the run's held-out families)",
            "",
            *table(layers, ("tool_selection", "parameters", "call_order", "parse_failure")),
            "",
            *figure(run / "compare-layers", "results-layers.png"),
        ]
    out += ["## The data and the training run", ""]
    val, cur, general = stats["validate"], stats["curate"], stats["general"]
    if generate:
        total = {k: sum(g.get(k, 0) for g in generate) for k in ("in", "out", "rejected", "wall_s")}
        out.append(
            f"- generate (reference teacher over BFCL live gold calls, simulated tools, in "
            f"{len(generate)} stages, one per tool namespace): {total['in']} tasks, "
            f"{total['out']} trajectories, {total['rejected']} failed; {total['wall_s']:.0f} s"
        )
    if general:
        out.append(f"- general: {general.get('out')} answers of the base model to general prompts")
    if val:
        out.append(
            f"- validate: {val.get('out')} kept, {val.get('rejected')} rejected "
            f"({', '.join(f'{k} {v}' for k, v in val.get('reasons', {}).items())})"
        )
    if cur:
        out.append(
            f"- curate: {cur.get('out')} kept, {cur.get('rejected')} dropped "
            f"({', '.join(f'{k} {v}' for k, v in cur.get('reasons', {}).items())})"
        )
    sizes = {
        split: sum(1 for _ in path.open())
        for split in ("train", "test")
        if (path := run / "export" / f"{split}.openai.jsonl").exists()
    }
    if sizes:
        out.append(f"- export: {sizes.get('train')} train, {sizes.get('test')} test conversations")
    if train:
        out.append(
            f"- training: {train.get('steps')} steps on {train.get('examples')} conversations "
            f"({train.get('too_long')} left out: no assistant token within max_length), "
            f"loss {train.get('loss_first'):.3f} -> {train.get('loss_last'):.3f}, "
            f"{train.get('wall_s'):.0f} s"
        )
    out += [
        "",
        "## Commands",
        "",
        "```bash",
        (Path(__file__).parent / "run.sh").read_text().split("set -euo pipefail\n", 1)[1].strip(),
        "```",
        "",
    ]
    return "\n".join(out)


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bfcl-smollm2")))
