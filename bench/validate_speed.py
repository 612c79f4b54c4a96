"""Format + logic validation speed on one core, and peak memory at 1k vs 10k trajectories.

Run: python bench/validate_speed.py   (no arguments; about a minute)
Each measurement runs the validate stage in a fresh single-threaded process, so the rate is
per core and the peak RSS belongs to that run alone. Memory flat in the number of trajectories
(streaming) means peak_rss_mb_10k close to peak_rss_mb_1k.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fcsft.formats import get_format
from fcsft.jsonl import write_jsonl
from fcsft.records import FinalAnswer, Meta, Observation, Think, Tool, ToolCall, Trajectory

TOOLS = [
    Tool(
        name="search",
        description="Search filings and news.",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}},
            "required": ["query"],
        },
    ),
    Tool(
        name="fetch",
        description="Read a document.",
        parameters={
            "type": "object",
            "properties": {"url": {"type": "string"}},
            "required": ["url"],
        },
    ),
    Tool(
        name="python",
        description="Run code.",
        parameters={
            "type": "object",
            "properties": {"code": {"type": "string"}},
            "required": ["code"],
        },
    ),
]
COMPANIES = ["Orrin Dynamics", "Vellum Bank", "Harbor Lane Foods", "Kestrel Mining", "Juniper Rail"]


def synthetic(index: int) -> dict:
    """A realistic trajectory: 1-4 calls, observations with numbers, some with flaws."""
    rng = random.Random(index)
    company = rng.choice(COMPANIES)
    revenue = round(rng.uniform(100, 5000), 1)
    steps: list = [Think(text=f"I need {company}'s revenue for fiscal 2025 and then the growth.")]
    for k in range(rng.randint(1, 4)):
        name = rng.choice(["search", "fetch", "python"])
        arguments = {
            "search": {"query": f"{company} revenue 2025", "max_results": 3},
            "fetch": {"url": f"file://filings/{company.lower().replace(' ', '-')}.md"},
            "python": {"code": f"print(round({revenue} * 1.{k + 1}, 2))"},
        }[name]
        if rng.random() < 0.05:
            arguments = {"q": "oops"}  # missing required, unknown param
        steps.append(ToolCall(name=name, arguments=arguments, id=f"call_{k}"))
        steps.append(
            Observation(
                content=f"{company} reported revenue of ${revenue:,} million in "
                f"fiscal 2025, with {rng.randint(100, 9000)} employees.",
                call_id=f"call_{k}",
                error=rng.random() < 0.05,
            )
        )
    answer = revenue if rng.random() > 0.1 else revenue + 17.3  # some ungrounded answers
    steps.append(FinalAnswer(text=f"{company}'s fiscal 2025 revenue was ${answer:,} million."))
    trajectory = Trajectory(
        id=f"b{index:06d}",
        question=f"What was {company}'s revenue in 2025?",
        tools=TOOLS,
        steps=steps,
        meta=Meta(source="bench"),
    )
    return get_format("openai").render(trajectory)


CHILD = """
import json, resource, sys, time
from pathlib import Path
from fcsft.runner.run import run_stage
from fcsft.validate.stage import ValidateConfig, validate_stage
source, run_dir = Path(sys.argv[1]), Path(sys.argv[2])
started = time.perf_counter()
stats = run_stage(validate_stage(ValidateConfig()), run_dir, [source])
wall = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"n": stats["in"], "wall": wall, "rejected": stats["rejected"], "peak_mb": peak}))
"""


def measure(source: Path, run_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(run_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        write_jsonl(root / "10k.jsonl", (synthetic(i) for i in range(10_000)))
        write_jsonl(root / "1k.jsonl", (synthetic(i) for i in range(1_000)))
        print(f"generated in {time.perf_counter() - started:.1f}s", file=sys.stderr)
        small = measure(root / "1k.jsonl", root / "run1k")
        large = measure(root / "10k.jsonl", root / "run10k")
        print(f"1k: {small}\n10k: {large}", file=sys.stderr)
    figures = {
        "per_core_per_s": round(large["n"] / large["wall"], 1),
        "peak_rss_mb_1k": round(small["peak_mb"], 1),
        "peak_rss_mb_10k": round(large["peak_mb"], 1),
        "rejected_share_10k": round(large["rejected"] / large["n"], 4),
    }
    print(json.dumps({"bench": "validate_speed", "figures": figures}))


if __name__ == "__main__":
    main()
