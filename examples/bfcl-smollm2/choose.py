"""Pick the proof's training step from the dev part, by a rule fixed before any test score.

    python examples/bfcl-smollm2/choose.py RUN_DIR [--keep FILE]   (prints the chosen step)

Reads RUN_DIR/dev/step-N/report.json, the evaluation of seed 0's model at step N on the dev
part of the four BFCL categories, and writes RUN_DIR/dev/choice.json. The rule: among the
steps whose dev scores meet the two trade-off targets (irrelevance no-call >= 80% and a call
on >= 85% of simple_python items), the one with the highest mean of the four headline rates
(AST accuracy on simple_python, multiple and parallel, no-call accuracy on irrelevance); if no
step meets both, the highest mean over all steps. A tie goes to the earlier step.

The choice also records the recipe those models were trained by: the build command as it ran
(RUN_DIR/commands.jsonl) and seed 0's training settings (train-s0/model/fcsft.json). --keep
writes a copy to FILE, for a recipe's dev study to stay in the repository (tried/) after the
run directory is gone.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from fcsft.jsonl import write_json

HEADLINE = {
    "simple_python": "full_call",
    "multiple": "full_call",
    "parallel": "full_call",
    "irrelevance": "no_call",
}
GUARDS = {("irrelevance", "no_call"): 0.80, ("simple_python", "called"): 0.85}
TRAIN_KEYS = (
    "method",
    "lora_r",
    "learning_rate",
    "batch_size",
    "grad_accum",
    "max_length",
    "steps",
)


def rate(report: dict, category: str, metric: str) -> float | None:
    return report.get("layers", {}).get(category, {}).get(metric, {}).get("rate")


def scores(report: dict) -> dict[str, float]:
    part = report.get("split", {}).get("part")
    if part != "dev":
        raise SystemExit(f"a choice is made on the dev part only; this report asked {part!r}")
    headline = {cat: rate(report, cat, metric) for cat, metric in HEADLINE.items()}
    headline = {cat: value for cat, value in headline.items() if value is not None}
    guards = [rate(report, c, m) for c, m in GUARDS]
    return {
        **{f"{cat}_{HEADLINE[cat]}": value for cat, value in headline.items()},
        "simple_python_called": rate(report, "simple_python", "called"),
        "mean": sum(headline.values()) / len(headline),
        "meets_guards": all(
            value is not None and value >= least
            for value, least in zip(guards, GUARDS.values(), strict=True)
        ),
    }


def recipe(root: Path) -> dict:
    """The build command as it last ran and seed 0's training settings and data counts."""
    commands = root / "commands.jsonl"
    lines = commands.read_text().splitlines() if commands.exists() else []
    builds = [json.loads(line)["argv"] for line in lines if "build.py" in line]
    trained = root / "train-s0" / "model" / "fcsft.json"
    summary = json.loads(trained.read_text()) if trained.exists() else {}
    return {
        "build": builds[-1][1:] if builds else None,
        "train": {key: summary.get("config", {}).get(key) for key in TRAIN_KEYS},
        "examples": summary.get("examples"),
        "too_long": summary.get("too_long"),
    }


def choose(root: Path) -> dict:
    steps = {}
    for path in root.glob("dev/step-*/report.json"):
        if match := re.fullmatch(r"step-(\d+)", path.parent.name):
            steps[int(match.group(1))] = scores(json.loads(path.read_text()))
    if not steps:
        raise SystemExit(f"{root}/dev: no step-N/report.json to choose from")
    guarded = [step for step, s in steps.items() if s["meets_guards"]]
    pool = guarded or list(steps)
    chosen = max(sorted(pool), key=lambda step: steps[step]["mean"])
    return {
        "step": chosen,
        "rule": __doc__.split("\n\n")[2].replace("\n", " "),
        "met_guards": bool(guarded),
        "steps": {str(step): steps[step] for step in sorted(steps)},
        "recipe": recipe(root),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--keep", type=Path, help="also write the choice to this file")
    args = parser.parse_args()
    choice = choose(args.run_dir)
    for path in [args.run_dir / "dev" / "choice.json", *([args.keep] if args.keep else [])]:
        write_json(path, choice)
    print(choice["step"])


if __name__ == "__main__":
    main()
