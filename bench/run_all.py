"""Every benchmark, one after another, and each figure beside its target.

    python bench/run_all.py                    # all of them (several minutes a bench on 2 cores)
    python bench/run_all.py client_throughput  # some of them, by name

Each bench runs in a process of its own, as `python bench/NAME.py` with no arguments; its last
line of output is its JSON figures. The targets are the ones the project's issues set; a figure
with no target is printed for the record. Run it on an otherwise idle machine: the throughput
ratios compare two clients in the same run, but a busy neighbour still shifts them. Exit
status 1 if a bench failed or missed a target. The last line is JSON:
{"bench": "all", "figures": {"NAME.KEY": NUMBER, ...}, "missed": [...], "failed": [...]}.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent

Check = tuple[str, Callable[[float, dict[str, float]], bool]]  # (target as written, test)


def at_least(bound: float) -> Check:
    return f">= {bound:g}", lambda value, _: value >= bound


def at_most(bound: float) -> Check:
    return f"<= {bound:g}", lambda value, _: value <= bound


def below(bound: float) -> Check:
    return f"< {bound:g}", lambda value, _: value < bound


def flat_beside(key: str, factor: float) -> Check:
    """Memory flat in the input size: at most `factor` times the smaller run's figure."""
    return f"<= {factor:g} x {key}", lambda value, figures: value <= factor * figures[key]


# bench -> figure -> target, from the issues that asked for each bench (#4, #6, #7, #9, #10, #22).
TARGETS: dict[str, dict[str, Check]] = {
    "client_throughput": {
        "vs_raw_c64": at_least(0.9),
        "vs_raw_c256": at_least(0.9),
        "cache_speedup": at_least(20),
    },
    "generate_throughput": {
        "vs_raw_c64": at_least(0.85),
        "lost": at_most(0),
        "duplicated": at_most(0),
    },
    "validate_speed": {
        "per_core_per_s": at_least(2000),
        "peak_rss_mb_10k": flat_beside("peak_rss_mb_1k", 1.25),
    },
    "bfcl_conformance": {"agreement": at_least(0.999)},  # #9 asked for the figure; bound ours
    "train_speed": {"padding_share": below(0.10), "vs_plain_loop": at_least(0.8)},
    "local_generation": {},
    "eval_speed": {"bfcl_vs_naive": at_least(6), "mmlu_vs_naive": at_least(4)},
}


def run_bench(name: str) -> tuple[dict[str, float] | None, float, str]:
    """The bench's figures (None if it failed), its wall time, and its output's tail."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py")], capture_output=True, text=True, cwd=HERE.parent
    )
    wall = time.perf_counter() - started
    lines = result.stdout.strip().splitlines()
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
    if result.returncode != 0 or not lines:
        return None, wall, tail
    try:
        report = json.loads(lines[-1])
    except json.JSONDecodeError:
        return None, wall, tail
    if report.get("bench") != name or not isinstance(report.get("figures"), dict):
        return None, wall, tail
    return report["figures"], wall, tail


def main(names: list[str]) -> int:
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        print(f"unknown bench {unknown[0]!r}: choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    every: dict[str, float] = {}
    missed: list[str] = []
    failed: list[str] = []
    print(f"{'bench':<20} {'figure':<22} {'value':>10}  {'target':<26} result")
    for name in names or list(TARGETS):
        figures, wall, tail = run_bench(name)
        if figures is None:
            failed.append(name)
            print(f"{name:<20} failed after {wall:.0f}s:\n{tail}")
            continue
        for key, value in figures.items():
            every[f"{name}.{key}"] = value
            target, test = TARGETS[name].get(key, ("-", None))
            verdict = "-" if test is None else ("met" if test(value, figures) else "MISSED")
            if verdict == "MISSED":
                missed.append(f"{name}.{key}")
            shown = f"{value:>10g}" if isinstance(value, int | float) else f"{value!s:>10}"
            print(f"{name:<20} {key:<22} {shown}  {target:<26} {verdict}")
        for key in TARGETS[name].keys() - figures.keys():
            missed.append(f"{name}.{key}")
            print(f"{name:<20} {key:<22} {'absent':>10}  {TARGETS[name][key][0]:<26} MISSED")
        print(f"{name:<20} ({wall:.0f}s)")
    summary = {"bench": "all", "figures": every, "missed": missed, "failed": failed}
    print(json.dumps(summary))
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
