"""Pick the proof's training step and call bias from the dev part, by a rule fixed before any
test score.

    python examples/bfcl-smollm2/choose.py RUN_DIR [--keep FILE]   (prints "STEP BIAS")

Reads RUN_DIR/dev/step-N/report.json and RUN_DIR/dev/step-N-biasB/report.json, the evaluations
of seed 0's model at step N on the dev part of the four BFCL categories, decoded with call bias
0 or B (`fcsft eval --call-bias`), and writes RUN_DIR/dev/choice.json. The rule: among the
(step, bias) pairs whose dev scores meet the two trade-off targets (irrelevance no-call >= 80%
and a call on >= 85% of simple_python items), the one with the highest mean of the four
headline rates (AST accuracy on simple_python, multiple and parallel, no-call accuracy on
irrelevance); if none meets both, the highest mean over all pairs. A tie goes to the earlier
step, then to the bias nearer 0.

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


def label(step: int, bias: float) -> str:
    """A (step, bias) pair's key in choice.json: the step alone where the bias is 0."""
    return f"{step}" if not bias else f"{step} bias {bias:g}"


def choose(root: Path) -> dict:
    pairs = {}
    for path in root.glob("dev/step-*/report.json"):
        if match := re.fullmatch(r"step-(\d+)(?:-bias(-?\d+(?:\.\d+)?))?", path.parent.name):
            pair = (int(match.group(1)), float(match.group(2) or 0))
            pairs[pair] = scores(json.loads(path.read_text()))
    if not pairs:
        raise SystemExit(f"{root}/dev: no step-N/report.json to choose from")
    order = sorted(pairs, key=lambda pair: (pair[0], abs(pair[1])))
    guarded = [pair for pair in order if pairs[pair]["meets_guards"]]
    step, bias = max(guarded or order, key=lambda pair: pairs[pair]["mean"])
    return {
        "step": step,
        "call_bias": bias,
        "chosen": label(step, bias),
        "rule": __doc__.split("\n\n")[2].replace("\n", " "),
        "met_guards": bool(guarded),
        "steps": {label(*pair): pairs[pair] for pair in order},
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
    print(choice["step"], f"{choice['call_bias']:g}")


if __name__ == "__main__":
    main()
