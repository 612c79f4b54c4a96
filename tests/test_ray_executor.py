"""`executor: ray` writes the run directory the local executor writes, and resumes it the same way.

A local Ray cluster of two nodes (two CPUs each), started once for the module. Its worker
processes run in a folder of their own (the runtime env's working_dir), find the test helpers
on PYTHONPATH, and carry an audit hook (`ray_guard`) that refuses and writes down any file
operation under the folder holding the generate tests' run directories: only the driver may
touch those.
"""

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from fcsft.records import Verdict
from fcsft.runner.run import LocalExecutor, run_stage
from fcsft.stage import Outcome, Stage, StopStage
from fcsft.testing.teacher import generate_project, make_tasks
from ray_guard import install as forbid_run_dirs
from stage_fixture import make_stage
from test_generate_faults import generate
from test_stage import files, make_input

ray = pytest.importorskip("ray")
from fcsft.runner.ray import RayExecutor  # noqa: E402  (needs ray)

HERE = Path(__file__).parent
SRC = HERE.parent / "src"
FAILING = 5  # the task whose teacher fails: its failure goes to rejected.jsonl


@dataclass
class Guarded:
    runs: Path  # run directories under here are the driver's alone
    violations: Path  # what a worker touched there, one line each


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from ray.cluster_utils import Cluster

    assert not ray.is_initialized()
    guarded = Guarded(tmp_path_factory.mktemp("runs"), tmp_path_factory.mktemp("log") / "touched")
    elsewhere = tmp_path_factory.mktemp("worker-cwd")
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    nodes.add_node(num_cpus=2)
    ray.init(
        address=nodes.address,
        include_dashboard=False,
        logging_level=logging.WARNING,
        runtime_env={
            "working_dir": str(elsewhere),
            # The fcsft under test, not whichever one is installed, and the test's own modules.
            "env_vars": {
                "PYTHONPATH": os.pathsep.join([str(HERE), str(SRC)]),
                "FCSFT_TEST_FORBIDDEN": str(guarded.runs),
                "FCSFT_TEST_VIOLATIONS": str(guarded.violations),
            },
            "worker_process_setup_hook": f"{forbid_run_dirs.__module__}.install",
        },
    )
    yield guarded
    ray.shutdown()
    nodes.shutdown()


@ray.remote(num_cpus=0)
def _where_and_refused(path: str) -> tuple[str, str, bool]:
    try:
        open(path).close()
    except PermissionError:
        return os.getcwd(), ray.get_runtime_context().get_node_id(), True
    return os.getcwd(), ray.get_runtime_context().get_node_id(), False


def test_workers_run_elsewhere_and_cannot_touch_the_run_directories(cluster):
    probe = cluster.runs / "probe"
    probe.write_text("x")
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    spread = ray.util.scheduling_strategies.NodeAffinitySchedulingStrategy
    answers = ray.get(
        [
            _where_and_refused.options(scheduling_strategy=spread(node, soft=False)).remote(
                str(probe)
            )
            for node in nodes
        ]
    )
    assert len(nodes) == 2 and {node for _, node, _ in answers} == set(nodes)
    assert all(cwd != os.getcwd() and refused for cwd, _, refused in answers)
    assert cluster.violations.read_text().count(str(probe)) == 2
    cluster.violations.unlink()


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


def project_with_run_dir(root: Path, run_dir: Path, tasks: list, **settings) -> Path:
    """A generate project in `root` whose run directory is `run_dir`, elsewhere."""
    project = generate_project(root, "mock:teacher.yaml", tasks, **settings)
    config = yaml.safe_load(project.read_text())
    config["run_dir"] = str(run_dir)
    project.write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.move(root / "run", run_dir)
    return project


def test_generate_on_ray_writes_what_local_writes_and_resumes(tmp_path, cluster):
    tasks = make_tasks(12)
    dirs = {}
    for executor in ("local", "ray"):
        root = tmp_path / executor
        root.mkdir()
        mock_teacher(root / "teacher.yaml", len(tasks))
        settings = {"executor": executor, "model": {"concurrency": 3}}
        if executor == "ray":
            settings["ray_workers"] = 2  # spread: one on each node
        project = project_with_run_dir(root, cluster.runs / executor, tasks, **settings)
        stats = generate(project)
        assert (stats["in"], stats["out"], stats["rejected"]) == (12, 11, 1)
        dirs[executor] = project, cluster.runs / executor / "generate"

    local, (ray_project, on_ray) = dirs["local"][1], dirs["ray"]
    assert files(on_ray) == files(local)
    assert (on_ray / "_done.json").read_bytes() == (local / "_done.json").read_bytes()
    assert ledger(on_ray) == ledger(local)
    assert comparable_stats(on_ray) == comparable_stats(local)

    # A crash after 4 commits, torn line and all. The teacher is gone now: the resumed run
    # writes the same files only if each task went to a worker with the replies it got before.
    book = on_ray / "_ledger.jsonl"
    book.write_text("".join(book.read_text().splitlines(keepends=True)[:4]))
    (on_ray / "_done.json").unlink()
    with (on_ray / "out.jsonl").open("a") as out:
        out.write('{"tools": [], "mess')
    dead = [{"error": "teacher unavailable"}] * 30
    (ray_project.parent / "teacher.yaml").write_text(yaml.safe_dump(dead))
    stats = generate(ray_project)
    assert stats["in"] == 12 and stats["attempts"] == 2
    assert files(on_ray) == files(local)
    assert ledger(on_ray) == ledger(local)
    assert not cluster.violations.exists()


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
