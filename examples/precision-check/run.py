"""bf16 against float32 on the same work: evaluation items, MMLU questions and a training run.

    python examples/precision-check/run.py [OUT_DIR]     (default runs/precision-check)

Evaluates the embedded SmolLM2-135M in both precisions on 200 BFCL items (the dev parts of
simple_python, multiple, parallel and irrelevance: no test item is used) and 200 MMLU
questions, and trains LoRA for 30 steps both ways on the synthetic conversations of
`bench/train_speed.py`. Writes OUT_DIR/precision.json and docs/precision.md: per BFCL item
full-call accuracy (and no-call on irrelevance) and MMLU cloze accuracy, each side with its
Wilson interval, the paired difference with McNemar's p and Newcombe's interval, the share of
replies that are the same text, and the two loss curves with their relative gap at the end
(mean of the last five steps). Every figure on the page comes from OUT_DIR's files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from fcsft.evaluate.run import EvalPlan, evaluate  # noqa: E402
from fcsft.evaluate.significance import mcnemar, paired_interval  # noqa: E402
from fcsft.intervals import wilson  # noqa: E402
from fcsft.jsonl import read_jsonl, write_json, write_jsonl  # noqa: E402
from fcsft.runner.run import run_stage  # noqa: E402
from fcsft.train.run import TrainConfig, train  # noqa: E402

CATEGORIES = ["simple_python", "multiple", "parallel", "irrelevance"]
MMLU = 200
STEPS = 30


def marks(eval_dir: Path) -> dict[str, int]:
    """1/0 per BFCL item: no call on irrelevance, the full call elsewhere."""
    out = {}
    for row in read_jsonl(eval_dir / "scores.jsonl"):
        metric = "no_call" if row.get("layer") == "irrelevance" else "full_call"
        value = row.get(metric)
        if value is not None:
            out[row["id"]] = int(value)
    return out


def raw_replies(eval_dir: Path) -> dict[str, list[str]]:
    return {row["id"]: row["raw"] for row in read_jsonl(eval_dir / "predictions" / "out.jsonl")}


def paired(first: list[int], second: list[int]) -> dict:
    return {
        "fp32": wilson(sum(first), len(first)).to_json(),
        "bf16": wilson(sum(second), len(second)).to_json(),
        "difference": (sum(second) - sum(first)) / len(first),
        "mcnemar": mcnemar(first, second),
        "interval": paired_interval(first, second),
    }


def main(out: Path) -> None:
    sides = {}
    for precision in ("fp32", "bf16"):
        plan = EvalPlan(
            model="local:smollm2",
            out_dir=out / precision,
            bfcl=CATEGORIES,
            split="dev",
            mmlu=MMLU,
            precision=precision,
            command=f"precision-check {precision}",
        )
        evaluate(plan, run_stage)
        sides[precision] = plan.out_dir
    a, b = marks(sides["fp32"]), marks(sides["bf16"])
    ids = sorted(a.keys() & b.keys())[:200]
    raw_a, raw_b = raw_replies(sides["fp32"]), raw_replies(sides["bf16"])
    mmlu_a = {r["id"]: r["cloze"] for r in read_jsonl(sides["fp32"] / "mmlu.jsonl")}
    mmlu_b = {r["id"]: r["cloze"] for r in read_jsonl(sides["bf16"] / "mmlu.jsonl")}
    questions = sorted(mmlu_a)
    result = {
        "bfcl": paired([a[i] for i in ids], [b[i] for i in ids])
        | {"n": len(ids), "same_text": sum(raw_a[i] == raw_b[i] for i in ids) / len(ids)},
        "mmlu_cloze": paired([mmlu_a[q] for q in questions], [mmlu_b[q] for q in questions])
        | {"n": len(questions)},
    }
    data = out / "train.jsonl"
    from train_speed import general
    from validate_speed import synthetic

    write_jsonl(data, [synthetic(i) for i in range(150)] + [general(i) for i in range(150)])
    curves = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(
            steps=STEPS,
            batch_size=4,
            max_length=512,
            val_share=0.0,
            save_steps=STEPS,
            precision=precision,  # type: ignore[arg-type]
        )
        curves[precision] = train(config, data, out / f"train-{precision}", on_step=None)[0][
            "losses"
        ]
    end = {p: sum(c[-5:]) / 5 for p, c in curves.items()}
    result["train"] = {
        "steps": STEPS,
        "losses": curves,
        "end_fp32": end["fp32"],
        "end_bf16": end["bf16"],
        "relative_gap": abs(end["bf16"] - end["fp32"]) / end["fp32"],
    }
    write_json(out / "precision.json", result)
    page(result, ROOT / "docs" / "precision.md")
    print(
        json.dumps(
            {k: {kk: vv for kk, vv in v.items() if kk != "losses"} for k, v in result.items()}
        )
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _row(name: str, figures: dict) -> str:
    interval = figures["interval"]
    low, high = interval["ci95_low"], interval["ci95_high"]
    span = f"[{100 * low:+.1f}, {100 * high:+.1f}] points" if low is not None else "none (n small)"
    return (
        f"| {name} | {figures['n']} | {_pct(figures['fp32']['value'])} | "
        f"{_pct(figures['bf16']['value'])} | {100 * figures['difference']:+.1f} points | "
        f"{span} | {figures['mcnemar']['p_value']:.3g} |"
    )


def page(result: dict, path: Path) -> None:
    """docs/precision.md from the figures (no number typed here)."""
    bfcl, mmlu, trained = result["bfcl"], result["mmlu_cloze"], result["train"]
    lines = [
        "# bf16 against float32",
        "",
        "Written by `python examples/precision-check/run.py` from its `precision.json`. The",
        "embedded SmolLM2-135M, the same items both ways; BFCL items are the dev parts of "
        + ", ".join(CATEGORIES)
        + " (full call, or no call on irrelevance).",
        "",
        "| what | n | fp32 | bf16 | bf16 - fp32 | 95% interval (Newcombe) | McNemar p |",
        "|---|---|---|---|---|---|---|",
        _row("BFCL", bfcl),
        _row("MMLU cloze", mmlu),
        "",
        f"Replies that are the same text both ways: {_pct(bfcl['same_text'])} of {bfcl['n']}.",
        "",
        f"LoRA, {trained['steps']} steps on the synthetic conversations of "
        f"`bench/train_speed.py`: mean loss of the last five steps {trained['end_fp32']:.4f} "
        f"(fp32) and {trained['end_bf16']:.4f} (bf16), a gap of "
        f"{_pct(trained['relative_gap'])} of fp32's.",
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "runs" / "precision-check")
