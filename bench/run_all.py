"""Every benchmark, one after another, and each figure beside its target.

    python bench/run_all.py                    # all of them (several minutes a bench on 2 cores)
    python bench/run_all.py client_throughput  # some of them, by name
    python bench/run_all.py --no-keep NAME     # a trial: bench/results and the README untouched
    python bench/run_all.py --table            # rewrite the README's table from bench/results

Each bench runs in a process of its own, as `python bench/NAME.py` with no arguments; its last
line of output is its JSON figures. The targets are the ones the project's issues set; a figure
with no target is printed for the record. Run it on an otherwise idle machine: the throughput
ratios compare two clients in the same run, but a busy neighbour still shifts them. Exit
status 1 if a bench failed or missed a target. The last line is JSON:
{"bench": "all", "figures": {"NAME.KEY": NUMBER, ...}, "missed": [...], "failed": [...]}.

Each bench's figures are also kept in bench/results/NAME.json (committed) with the machine,
commit and date of the run, and the README's benchmark table is written from those files
(`python bench/run_all.py --table` rewrites it without running anything).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fcsft.errors import UserError
from fcsft.files import with_block, write_text
from fcsft.jsonl import write_json

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
README = HERE.parent / "README.md"
TABLE = ("<!-- bench table: written by bench/run_all.py -->", "<!-- bench table end -->")

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


def machine() -> str:
    """The CPU (model name and core count) and, where torch is installed, what `precision:
    auto` picks on it and why."""
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    text = f"{model}, {os.cpu_count()} cores"
    try:
        from fcsft.models.precision import choose

        choice = choose()
        text += f", precision auto: {choice.precision} ({choice.reason})"
    except UserError as exc:  # no torch here: the CPU alone
        text += f", precision not known ({type(exc).__name__})"
    return text


def keep(name: str, figures: dict[str, float], wall: float, where: str) -> None:
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    write_json(
        RESULTS / f"{name}.json",
        {
            "bench": name,
            "figures": figures,
            "wall_s": round(wall, 1),
            "date": time.strftime("%Y-%m-%d", time.gmtime()),
            "commit": commit,
            "machine": where,
        },
    )


def table() -> str:
    """The README's table, from bench/results/*.json: every figure, its target and verdict."""
    rows = [
        "| bench | figure | value | target | run |",
        "|---|---|---|---|---|",
    ]
    for name in TARGETS:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            rows.append(f"| `{name}.py` | not run since its figures were kept | | | |")
            continue
        kept = json.loads(path.read_text())
        figures = kept["figures"]
        run = f"{kept['date']}, {kept['commit']}, {kept['wall_s']:.0f} s; {kept['machine']}"
        for key, value in figures.items():
            target, test = TARGETS[name].get(key, ("-", None))
            verdict = "" if test is None else (" (met)" if test(value, figures) else " (missed)")
            rows.append(f"| `{name}.py` | {key} | {value:g} | {target}{verdict} | {run} |")
            run = "〃"
    return "\n".join(rows)


def write_table() -> None:
    write_text(README, with_block(README.read_text(), *TABLE, table(), where=str(README)))


def main(args: list[str]) -> int:
    if args == ["--table"]:
        write_table()
        return 0
    keeping = "--no-keep" not in args
    names = [arg for arg in args if arg != "--no-keep"]
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        print(f"unknown bench {unknown[0]!r}: choose from {', '.join(TARGETS)}", file=sys.stderr)
        return 2
    every: dict[str, float] = {}
    missed: list[str] = []
    failed: list[str] = []
    where = machine()
    print(f"{'bench':<20} {'figure':<22} {'value':>10}  {'target':<26} result")
    for name in names or list(TARGETS):
        figures, wall, tail = run_bench(name)
        if figures is None:
            failed.append(name)
            print(f"{name:<20} failed after {wall:.0f}s:\n{tail}")
            continue
        if keeping:
            keep(name, figures, wall, where)
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
    if keeping:
        write_table()
    summary = {"bench": "all", "figures": every, "missed": missed, "failed": failed}
    print(json.dumps(summary))
    return 1 if missed or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
