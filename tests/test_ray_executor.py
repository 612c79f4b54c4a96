"""`executor: ray` writes the run directory the local executor writes, and resumes it the same way.

A local two-CPU Ray cluster, started once for the module; workers find the test helpers on
PYTHONPATH.
"""

import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from fcsft.records import Verdict
from fcsft.runner.run import LocalExecutor, run_stage
from fcsft.stage import Outcome, Stage, StopStage
from fcsft.testing.teacher import generate_project, make_tasks
from stage_fixture import make_stage
from test_generate_faults import generate
from test_stage import files, make_input

ray = pytest.importorskip("ray")
from fcsft.runner.ray import RayExecutor  # noqa: E402  (needs ray)

HERE = Path(__file__).parent
SRC = HERE.parent / "src"
FAILING = 5  # the task whose teacher fails: its failure goes to rejected.jsonl


@pytest.fixture(scope="module")
def cluster():
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            logging_level=logging.WARNING,
            # The fcsft under test, not whichever one is installed, and the test's own modules.
            runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([str(HERE), str(SRC)])}},
        )
    yield
    if started:
        ray.shutdown()


def mock_teacher(path: Path, count: int) -> None:
    """Two lookups and an answer per task, matched by the question, so that any worker holding
    its own copy of the script answers each task as one process would."""
    replies = []
    for i in range(count):
        mark = f"item {i}?"
        if i == FAILING:
            replies.append({"match": mark, "error": "teacher unavailable"})
            continue
        for step in ("a", "b"):
            call = {"name": "lookup", "arguments": {"key": f"{i}{step}"}}
            replies.append({"match": mark, "content": None, "tool_calls": [call]})
        replies.append({"match": mark, "content": f"Item {i} is filed."})
    path.write_text(yaml.safe_dump(replies), encoding="utf-8")


def comparable_stats(stage_dir: Path) -> dict:
    stats = json.loads((stage_dir / "stats.json").read_text())
    stats["counts"].pop("latency_s", None)
    return {k: v for k, v in stats.items() if k not in {"wall_s", "attempts"}}


def ledger(stage_dir: Path) -> list[tuple]:
    lines = [json.loads(line) for line in (stage_dir / "_ledger.jsonl").open()]
    return [(e["id"], e["out"], e["rejected"], e["reasons"]) for e in lines]


def test_generate_on_ray_writes_what_local_writes_and_resumes(tmp_path, cluster):
    tasks = make_tasks(12)
    dirs = {}
    for executor in ("local", "ray"):
        root = tmp_path / executor
        root.mkdir()
        mock_teacher(root / "teacher.yaml", len(tasks))
        settings = {"executor": executor, "model": {"concurrency": 3}}
        if executor == "ray":
            settings["ray_workers"] = 2
        project = generate_project(root, "mock:teacher.yaml", tasks, **settings)
        stats = generate(project)
        assert (stats["in"], stats["out"], stats["rejected"]) == (12, 11, 1)
        dirs[executor] = project, root / "run/generate"

    local, (ray_project, on_ray) = dirs["local"][1], dirs["ray"]
    assert files(on_ray) == files(local)
    assert (on_ray / "_done.json").read_bytes() == (local / "_done.json").read_bytes()
    assert ledger(on_ray) == ledger(local)
    assert comparable_stats(on_ray) == comparable_stats(local)

    # A crash after 4 commits, torn line and all; Ray resumes it to the same files.
    book = on_ray / "_ledger.jsonl"
    book.write_text("".join(book.read_text().splitlines(keepends=True)[:4]))
    (on_ray / "_done.json").unlink()
    with (on_ray / "out.jsonl").open("a") as out:
        out.write('{"tools": [], "mess')
    stats = generate(ray_project)
    assert stats["in"] == 12 and stats["attempts"] == 2
    assert files(on_ray) == files(local)
    assert ledger(on_ray) == ledger(local)


def test_a_stage_without_a_worker_recipe_is_shipped_as_it_is(tmp_path, cluster):
    source = make_input(tmp_path / "in.jsonl", 60)
    run_stage(make_stage(4), tmp_path / "local", [source])
    # Three workers on two CPUs: each gets a share of a CPU, so all of them are scheduled.
    run_stage(make_stage(4), tmp_path / "ray", [source], executor=RayExecutor(workers=3))
    assert files(tmp_path / "ray/fixture") == files(tmp_path / "local/fixture")


def stop_at_seven(obj):
    if obj["n"] == 7:
        raise StopStage("budget spent")
    if obj["n"] == 9:
        return [Outcome(obj, [Verdict(stage="s", rule="s.nine", passed=False, reason="9")])]
    return [Outcome(obj)]


def test_a_stop_on_a_worker_stops_where_the_local_run_stops(tmp_path, cluster):
    source = make_input(tmp_path / "in.jsonl", 20)
    stage = Stage("stops", stop_at_seven, parallel=3)
    results = {}
    for name, executor in (("local", LocalExecutor()), ("ray", RayExecutor(workers=2))):
        stats = run_stage(stage, tmp_path / name, [source], executor=executor)
        assert stats["stopped"] == "budget spent" and stats["in"] == 7
        results[name] = files(tmp_path / name / "stops")
    assert results["ray"] == results["local"]
