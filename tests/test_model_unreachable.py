"""A run whose model cannot be reached must not look like a success.

Against the real fake OpenAI server (and a port where nothing listens), as a user runs it:
a refused key or a server that is not there stops the run at the first request with one line
that names the fix, leaves nothing marked done, and the run after the fix does the work; a
model failing most requests the same way stops the stage; a stage that kept nothing exits
non-zero; and the records that failed on the model, and only they, are retried next time.
"""

import json
import socket
import time
from pathlib import Path

from clirun import fcsft
from fcsft.testing.fake_openai import FakeOpenAI
from fcsft.testing.teacher import CALLS, generate_project, make_tasks, two_calls_then_answer

KEY = "FCSFT_TEST_TEACHER_KEY"


def errors(result) -> list[str]:
    """The lines of stderr a user reads as the outcome (progress lines aside)."""
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def stats(run_dir: Path) -> dict:
    return json.loads((run_dir / "generate" / "stats.json").read_text())


def ledger_ids(run_dir: Path) -> list[str]:
    ledger = run_dir / "generate" / "_ledger.jsonl"
    return [json.loads(line)["id"] for line in ledger.open()] if ledger.exists() else []


class Outage:
    """A teacher that answers like `two_calls_then_answer` except for the questions it is
    told to fail on: raising makes the server answer 500, as a broken backend does."""

    def __init__(self, failing=lambda question: True):
        self.failing = failing
        self.down = True

    def __call__(self, body):
        question = next(m["content"] for m in body["messages"] if m["role"] == "user")
        if self.down and self.failing(question):
            raise RuntimeError("backend down")
        return two_calls_then_answer(body)


def test_a_refused_key_stops_the_run_at_the_first_request_and_the_fixed_run_does_the_work(
    tmp_path, monkeypatch
):
    monkeypatch.delenv(KEY, raising=False)
    with FakeOpenAI(api_key="sk-right", reply=two_calls_then_answer) as server:
        project = generate_project(
            tmp_path,
            f"openai:m@{server.base_url}",
            make_tasks(40),
            model={"api_key_env": KEY, "concurrency": 8},
        )
        refused = fcsft("generate", project)
        asked = server.received
        left = (tmp_path / "run/generate/_done.json").exists(), ledger_ids(tmp_path / "run")
        monkeypatch.setenv(KEY, "sk-right")
        fixed = fcsft("generate", project)

    assert refused.returncode == 2
    assert errors(refused) == [
        f"error: m at {server.base_url}/chat/completions: HTTP 401: Incorrect API key "
        f"provided.; no API key was sent: set ${KEY}"
    ]
    assert asked == 1  # asked once, not once a task
    assert left == (False, [])  # nothing marked done, no task written off
    run_dir = tmp_path / "run"
    assert fixed.returncode == 0, fixed.stderr
    assert (stats(run_dir)["out"], stats(run_dir)["rejected"]) == (40, 0)


def test_a_server_that_is_not_there_stops_the_run_at_once(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/v1"
    project = generate_project(
        tmp_path, f"openai:m@{base_url}", make_tasks(20), model={"max_retries": 3}
    )
    started = time.monotonic()
    result = fcsft("generate", project)
    elapsed = time.monotonic() - started

    assert result.returncode == 2
    [line] = errors(result)
    assert line.startswith(f"error: m at {base_url}/chat/completions: cannot connect (")
    assert line.endswith(f"); check that the server is running and the base URL '{base_url}'")
    assert elapsed < 20  # no backoff and retries for every task
    assert not (tmp_path / "run/generate/_done.json").exists()
    assert ledger_ids(tmp_path / "run") == []


def test_a_model_failing_most_requests_the_same_way_stops_the_stage(tmp_path):
    outage = Outage()
    tasks = make_tasks(60)
    with FakeOpenAI(reply=outage) as server:
        project = generate_project(
            tmp_path,
            f"openai:m@{server.base_url}",
            tasks,
            model={"max_retries": 0, "concurrency": 4},
        )
        stopped = fcsft("generate", project)
        asked = server.received
        done = (tmp_path / "run/generate/_done.json").exists()
        outage.down = False
        fixed = fcsft("generate", project)

    assert stopped.returncode == 2
    [line] = errors(stopped)
    assert line.startswith("error: 20 of the last 20 requests to m failed the same way, last: ")
    assert "HTTP 500" in line
    assert line.endswith(
        "stopped rather than reject every record: fix the cause and run again (what failed is "
        "retried)"
    )
    assert asked < 30  # the 20, and the few already on their way
    assert not done
    run_dir = tmp_path / "run"
    assert fixed.returncode == 0, fixed.stderr
    assert (stats(run_dir)["out"], stats(run_dir)["rejected"]) == (60, 0)
    assert sorted(ledger_ids(run_dir)) == [t.id for t in tasks]


def test_a_stage_that_kept_nothing_exits_non_zero_and_the_next_run_retries_it(tmp_path):
    outage = Outage()
    with FakeOpenAI(reply=outage) as server:
        project = generate_project(
            tmp_path, f"openai:m@{server.base_url}", make_tasks(5), model={"max_retries": 0}
        )
        failed = fcsft("generate", project)
        outage.down = False
        fixed = fcsft("generate", project)

    stage = tmp_path / "run" / "generate"
    assert failed.returncode == 2
    assert errors(failed) == [
        "error: stage generate produced nothing from 5 inputs: 5 rejected "
        f"(generate.model_error 5); see {stage / 'rejected.jsonl'}; the 5 that failed on the "
        "model are retried by the next run"
    ]
    assert fixed.returncode == 0, fixed.stderr
    assert (stats(tmp_path / "run")["out"], stats(tmp_path / "run")["rejected"]) == (5, 0)


def test_the_run_after_a_fix_retries_only_the_records_that_failed_on_the_model(tmp_path):
    tasks = make_tasks(30)
    failing = {f"What is filed under item {i}?" for i in range(0, 30, 5)}
    outage = Outage(lambda question: question in failing)
    with FakeOpenAI(reply=outage) as server:
        project = generate_project(
            tmp_path,
            f"openai:m@{server.base_url}",
            tasks,
            model={"max_retries": 0, "concurrency": 4},
        )
        first = fcsft("generate", project)
        stage = tmp_path / "run" / "generate"
        out_before = (stage / "out.jsonl").read_text().splitlines()
        first_stats = stats(tmp_path / "run")
        outage.down = False
        server.reset()
        second = fcsft("generate", project)
        asked = server.received
        server.reset()
        third = fcsft("generate", project)
        asked_again = server.received

    assert first.returncode == 0, first.stderr
    assert (first_stats["out"], first_stats["rejected"], first_stats["retry"]) == (24, 6, 6)
    assert second.returncode == 0, second.stderr
    assert asked == 6 * (CALLS + 1)  # the six failed tasks, nothing else
    after = stats(tmp_path / "run")
    assert (after["out"], after["rejected"], after["reasons"]) == (30, 0, {})
    out = (stage / "out.jsonl").read_text().splitlines()
    assert out[:24] == out_before  # what was kept stays as it was
    retried = sorted(json.loads(line)["meta"]["task_id"] for line in out[24:])
    assert retried == [f"t{i:05d}" for i in range(0, 30, 5)]
    assert sorted(ledger_ids(tmp_path / "run")) == [t.id for t in tasks]
    assert third.returncode == 0 and asked_again == 0  # done for good now: nothing asked
