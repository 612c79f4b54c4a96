"""The generate stage against a real local server that fails the way real ones do.

Every task must end in exactly one record: a trajectory in out.jsonl or its failure in
rejected.jsonl, never none and never two; and a run killed midway, then resumed, must write
what an uninterrupted run writes.
"""

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from clirun import fcsft
from fcsft.config import load_config
from fcsft.jsonl import read_jsonl
from fcsft.runner.pipeline import Run, run_pipeline
from fcsft.testing.fake_openai import FakeOpenAI, Faults
from fcsft.testing.teacher import CALLS, generate_project, make_tasks, two_calls_then_answer
from kill_midway import kill_generate_midway
from test_stage import files


def generate(project: Path) -> dict:
    return run_pipeline(Run(load_config(project), project.parent), "generate", "generate")[
        "generate"
    ]


def records_per_task(stage_dir: Path) -> Counter:
    """How many records (trajectories and failures together) each task has."""
    out = [r["meta"]["task_id"] for r in read_jsonl(stage_dir / "out.jsonl")]
    failed = [r["record"]["meta"]["task_id"] for r in read_jsonl(stage_dir / "rejected.jsonl")]
    return Counter(out + failed)


def test_every_task_ends_in_one_trajectory_or_one_failure(tmp_path):
    faults = Faults(rate_429=0.06, rate_500=0.06, rate_drop=0.06, rate_malformed=0.06)
    faults.retry_after = "0"  # honoured (test_client checks the wait itself), but no stall here
    tasks = make_tasks(120)
    with FakeOpenAI(faults, reply=two_calls_then_answer) as server:
        uri = f"openai:m@{server.base_url}"
        project = generate_project(
            tmp_path, uri, tasks, model={"max_retries": 1, "concurrency": 16}
        )
        stats = generate(project)
        served = server.stats()

    assert set(served["failed"]) == {"429", "500", "drop", "malformed"}
    stage_dir = tmp_path / "run/generate"
    assert records_per_task(stage_dir) == Counter({t.id: 1 for t in tasks})
    assert stats["in"] == 120 and stats["out"] + stats["rejected"] == 120
    assert stats["out"] > 0 and stats["rejected"] > 0  # 24% faults, 2 attempts: some give up
    assert stats["reasons"] == {"generate.model_error": stats["rejected"]}
    for failure in read_jsonl(stage_dir / "rejected.jsonl"):
        assert "gave up after 2 attempts" in failure["reasons"][0]["reason"]
    for trajectory in read_jsonl(stage_dir / "out.jsonl"):
        roles = [m["role"] for m in trajectory["messages"]]
        assert roles.count("tool") == CALLS and trajectory["messages"][-1]["content"]
    # Each answer the server gave is counted once, in the record of the task that asked for it.
    assert served["answered_twice"] == 0
    assert stats["counts"]["prompt_tokens"] == served["prompt_tokens"]
    assert stats["counts"]["completion_tokens"] == served["completion_tokens"]


def test_a_stage_closes_its_clients_connections_in_its_own_event_loop(tmp_path):
    """Each stage runs in an event loop of its own, and connections cannot be closed once it
    is gone ("Unclosed client session" at exit): the run closes them as the stage ends."""
    with FakeOpenAI(Faults(), reply=two_calls_then_answer) as server:
        project = generate_project(tmp_path, f"openai:m@{server.base_url}", make_tasks(4))
        run = Run(load_config(project), project.parent)
        stats = run_pipeline(run, "generate", "generate")["generate"]
    assert stats["out"] == 4
    client, _ = run.clients["teacher"]
    assert client.provider._session is None  # closed, to be reopened by the next stage's loop
    assert len(run.cache) == 4 * (CALLS + 1)  # and the cached replies are committed


def test_sigkill_midway_then_resume_equals_an_uninterrupted_run(tmp_path):
    faults = Faults(latency_s=0.005, rate_429=0.02, rate_500=0.01, rate_drop=0.01)
    faults.retry_after = "0"
    tasks = make_tasks(200)
    with FakeOpenAI(faults, reply=two_calls_then_answer) as server:
        uri = f"openai:m@{server.base_url}"
        settings = {"model": {"max_retries": 8, "concurrency": 16}}
        clean = generate_project(tmp_path / "clean", uri, tasks, **settings)
        generate(clean)

        killed = generate_project(tmp_path / "killed", uri, tasks, **settings)
        ledger = killed.parent / "run/generate/_ledger.jsonl"
        committed = kill_generate_midway(killed, 50)
        assert 50 <= committed < 200, "the kill must land midway"
        stats = generate(killed)

    assert stats["in"] == 200 and stats["attempts"] == 2
    assert files(killed.parent / "run/generate") == files(clean.parent / "run/generate")
    assert records_per_task(killed.parent / "run/generate") == Counter({t.id: 1 for t in tasks})
    ids = [json.loads(line)["id"] for line in ledger.open()]
    assert len(ids) == len(set(ids)) == 200


def test_a_second_process_on_the_same_run_directory_stops_at_once(tmp_path):
    """Two processes appending to one run directory would write every task twice and pay
    every request twice: a second one (the same command, the whole run, or a stage command
    writing there) stops before doing anything, naming the first, which goes on undisturbed."""
    tasks = make_tasks(120)
    # The server holds its answers while the second processes start, so that the first is
    # still running when they do however slowly a loaded machine starts them.
    answering = threading.Event()
    answering.set()

    def held(body):
        answering.wait(timeout=120)
        return two_calls_then_answer(body)

    with FakeOpenAI(Faults(latency_s=0.1), reply=held) as server:
        project = generate_project(
            tmp_path, f"openai:m@{server.base_url}", tasks, model={"concurrency": 4}
        )
        run_dir = tmp_path / "run"
        ledger = run_dir / "generate" / "_ledger.jsonl"
        first = cli("generate", project)
        deadline = time.monotonic() + 60
        while not (ledger.exists() and ledger.read_bytes().count(b"\n") >= 1):
            assert time.monotonic() < deadline and first.poll() is None
            time.sleep(0.01)
        answering.clear()
        seconds = [
            cli("generate", project),
            cli("run", project, "--from", "generate", "--until", "validate"),
            cli("validate", "--in", run_dir / "generate", "--out", run_dir / "validate"),
        ]
        errors = [second.communicate(timeout=60)[1] for second in seconds]
        assert first.poll() is None  # the second ones met the first at work
        answering.set()
        _, first_err = first.communicate(timeout=120)
        served = server.stats()

    for second, error in zip(seconds, errors, strict=True):
        assert second.returncode == 2, error
        [line] = error.strip().splitlines()
        assert line.startswith(
            f"error: {run_dir} is in use by pid {first.pid} (cli.py generate {project}, started "
        ), line
    assert first.returncode == 0, first_err
    assert not (run_dir / "validate").exists()
    ids = [json.loads(line)["id"] for line in ledger.open()]
    assert len(ids) == len(set(ids)) == 120
    assert records_per_task(run_dir / "generate") == Counter({t.id: 1 for t in tasks})
    assert served["answered_twice"] == 0 and served["received"] == 120 * (CALLS + 1)


def cli(*args) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "fcsft.cli", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_garbage_response_cache_is_set_aside_in_one_line_and_the_run_goes_on(tmp_path):
    with FakeOpenAI(reply=two_calls_then_answer) as server:
        project = generate_project(tmp_path, f"openai:m@{server.base_url}", make_tasks(3))
        cache = tmp_path / "run" / "cache.sqlite"
        cache.write_bytes(b"\x00garbage\n" * 100)
        result = fcsft("generate", project)
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "response cache" in line]
    [moved] = cache.parent.glob("cache.sqlite.corrupt-*")
    assert line == (
        f"{cache} is not a usable response cache (file is not a database); set aside as "
        f"{moved.name}, starting an empty one"
    )
    assert moved.read_bytes() == b"\x00garbage\n" * 100
    assert json.loads((tmp_path / "run/generate/stats.json").read_text())["out"] == 3
