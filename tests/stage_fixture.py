"""A deterministic stage run in a subprocess by the kill-and-resume test."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fcsft.records import Verdict
from fcsft.runner.run import run_stage
from fcsft.stage import Outcome, Stage


async def expand(obj: dict) -> list[Outcome]:
    n = obj["n"]
    await asyncio.sleep(0.002 * (n % 7))  # uneven latency: finishing order differs from input order
    if n % 5 == 0:
        verdict = Verdict(
            stage="fixture",
            rule="fixture.multiple_of_five",
            passed=False,
            reason=f"{n} is a multiple of five",
        )
        return [Outcome({"id": obj["id"], "n": n}, [verdict])]
    copies = 1 + n % 3
    return [
        Outcome({"id": f"{obj['id']}-{k}", "n": n, "square": n * n}, counts={"tokens": n})
        for k in range(copies)
    ]


def make_stage(parallel: int) -> Stage:
    return Stage("fixture", expand, config={"copies": "1+n%3"}, parallel=parallel)


if __name__ == "__main__":
    run_dir, source, parallel = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    run_stage(make_stage(parallel), run_dir, [source])
