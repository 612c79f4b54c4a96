"""Tasks per second of the real generate stage against bare aiohttp doing the same requests.

    python bench/generate_throughput.py        # no arguments; about two minutes

Method: the fake server (fcsft.testing.fake_openai) runs in its own process, answers after
50 ms and fails 2% of requests with a 429 (Retry-After 0.1 s, so that a handful of late
refusals do not make the figure a measure of the tail) and 2% with a 500. Its replies follow
fcsft.testing.teacher: two tool calls, one a reply, then an answer, so each of the 1,000 tasks
makes three requests in a row. Each repeat runs, in alternating order:

- fcsft: `run_pipeline(..., "generate", "generate")` on a fresh project (the real stage: the
  agent loop, the `lookup` function tool, the client with its response cache, the openai
  provider, the ledger), 64 tasks in flight and a client limit of 64;
- bare: one aiohttp session and 64 workers, each task's three requests in a row with the same
  messages and tools, the tool run in between, and 429/500 retried with fcsft's own delays
  (fcsft.models.openai.retry_delay), so the two differ in overhead and not in policy.

Other load on the machine only slows a run down, so each side's figure is its best run (as
timeit reports the minimum); the median and range of the paired ratios are printed beside it.

Figures: vs_raw_c64 = fcsft tasks/s / bare tasks/s (best runs); fcsft_tasks_s and
bare_tasks_s; ideal_tasks_s = 64 / (3 x latency); lost and duplicated = tasks with no record,
or more than one, across out.jsonl and rejected.jsonl of every fcsft run; gave_up = tasks
recorded as failures (their requests failed 7 times). The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

from _common import drive, read_base_url, start_fake_server, stop_server
from fcsft.config import load_config
from fcsft.formats.openai import tool_json
from fcsft.generate.stage import SYSTEM
from fcsft.jsonl import read_jsonl
from fcsft.models.openai import retry_after_seconds, retry_delay
from fcsft.records import Task
from fcsft.runner.pipeline import Run, run_pipeline
from fcsft.testing.teacher import generate_project, lookup, make_tasks
from fcsft.tools import Toolbox

MODEL = "bench-teacher"
MAX_RETRIES = 6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--fault-rate", type=float, default=0.02, help="of 429s, and of 500s")
    parser.add_argument("--retry-after", default="0.1", help="seconds, sent with each 429")
    parser.add_argument("--repeats", type=int, default=5, help="runs per side")
    args = parser.parse_args()
    rate = str(args.fault_rate)
    options = ["--rate-429", rate, "--rate-500", rate, "--retry-after", args.retry_after]
    options += ["--reply", "fcsft.testing.teacher:two_calls_then_answer"]
    server = start_fake_server(args.latency_ms, *options)
    try:
        base_url = read_base_url(server)
        figures = measure(base_url, args)
    finally:
        stop_server(server)
    print(json.dumps({"bench": "generate_throughput", "figures": figures}))


def measure(base_url: str, args: argparse.Namespace) -> dict[str, Any]:
    tasks = make_tasks(args.tasks)
    conc = args.concurrency
    print(f"server {base_url}; {len(tasks)} tasks of 3 requests, {conc} in flight")
    print(f"{'repeat':>6} {'bare tasks/s':>13} {'fcsft tasks/s':>14} {'ratio':>6}")
    bare_rates: list[float] = []
    fcsft_rates: list[float] = []
    per_task: Counter = Counter()
    gave_up = 0
    with tempfile.TemporaryDirectory(prefix="fcsft-bench-") as folder:
        for repeat in range(args.repeats):
            root = Path(folder) / f"run{repeat}"
            sides = ["bare", "fcsft"] if repeat % 2 == 0 else ["fcsft", "bare"]
            for side in sides:
                if side == "bare":
                    wall = asyncio.run(bare_run(base_url, tasks, conc))
                    bare_rates.append(len(tasks) / wall)
                else:
                    wall, counts, failed = fcsft_run(base_url, tasks, conc, root)
                    fcsft_rates.append(len(tasks) / wall)
                    per_task.update(counts)
                    gave_up += failed
            ratio = fcsft_rates[-1] / bare_rates[-1]
            print(f"{repeat:>6} {bare_rates[-1]:>13.1f} {fcsft_rates[-1]:>14.1f} {ratio:>6.3f}")
    bare_best, fcsft_best = max(bare_rates), max(fcsft_rates)
    pairs = [f / b for f, b in zip(fcsft_rates, bare_rates, strict=True)]
    expected = {t.id for t in tasks}
    lost = sum(
        args.repeats - per_task[ident] for ident in expected if per_task[ident] < args.repeats
    )
    duplicated = sum(n - args.repeats for n in per_task.values() if n > args.repeats)
    duplicated += sum(n for ident, n in per_task.items() if ident not in expected)
    print(
        f"best: bare {bare_best:.1f} tasks/s, fcsft {fcsft_best:.1f} tasks/s, "
        f"ratio {fcsft_best / bare_best:.3f} (paired median {statistics.median(pairs):.3f}; "
        f"{min(pairs):.3f} to {max(pairs):.3f}); lost {lost}, duplicated {duplicated}"
    )
    return {
        "vs_raw_c64": round(fcsft_best / bare_best, 3),
        "lost": lost,
        "duplicated": duplicated,
        "fcsft_tasks_s": round(fcsft_best, 1),
        "bare_tasks_s": round(bare_best, 1),
        "ideal_tasks_s": round(conc / (3 * args.latency_ms / 1000), 1),
        "paired_median": round(statistics.median(pairs), 3),
        "gave_up": gave_up,
        "runs": args.repeats,
    }


def fcsft_run(
    base_url: str, tasks: list[Task], concurrency: int, root: Path
) -> tuple[float, Counter, int]:
    """Seconds for the generate stage; records per task; tasks recorded as failures."""
    model = {"concurrency": concurrency, "max_retries": MAX_RETRIES}
    uri = f"openai:{MODEL}@{base_url}"
    project = generate_project(root, uri, tasks, model=model)
    run = Run(load_config(project), root)
    started = time.perf_counter()
    run_pipeline(run, "generate", "generate")
    wall = time.perf_counter() - started
    stage_dir = root / "run" / "generate"
    counts: Counter = Counter(r["meta"]["task_id"] for r in read_jsonl(stage_dir / "out.jsonl"))
    failed = [r["record"]["meta"]["task_id"] for r in read_jsonl(stage_dir / "rejected.jsonl")]
    counts.update(failed)
    return wall, counts, len(failed)


async def bare_run(base_url: str, tasks: list[Task], concurrency: int) -> float:
    """The ceiling: aiohttp, JSON in and out, the tool called in between, retries; nothing else."""
    url = f"{base_url}/chat/completions"
    tools = [tool_json(tool.spec) for tool in Toolbox([lookup]).values()]
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def post(body: dict[str, Any]) -> dict[str, Any]:
            data = json.dumps(body).encode()
            for attempt in range(MAX_RETRIES + 1):
                async with session.post(url, data=data) as answer:
                    raw = await answer.read()
                    if answer.status == 200:
                        return json.loads(raw)["choices"][0]["message"]
                    if answer.status != 429 and answer.status < 500:
                        raise SystemExit(f"bare client: HTTP {answer.status}")
                    wait = retry_after_seconds(answer.headers.get("Retry-After"))
                await asyncio.sleep(retry_delay(attempt, wait))
            raise SystemExit("bare client: gave up")

        async def solve(task: Task) -> None:
            messages: list[dict[str, Any]] = [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": task.question},
            ]
            while True:
                body = {
                    "model": MODEL,
                    "messages": messages,
                    "tools": tools,
                    "temperature": 0.7,
                    "max_tokens": 1024,
                }
                message = await post(body)
                messages.append(message)
                calls = message.get("tool_calls") or []
                if not calls:
                    return
                for call in calls:
                    arguments = json.loads(call["function"]["arguments"])
                    result = lookup(**arguments)
                    messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})

        return await drive(tasks, concurrency, solve)


if __name__ == "__main__":
    main()
