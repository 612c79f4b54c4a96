"""Memory inside the run: a scripted teacher that makes one mistake until a lesson tells it not
to, checked by the real validate rules while generate runs, killed midway and resumed."""

import asyncio
import json
import time
from pathlib import Path

import pytest
import yaml

from fcsft.config import load_config
from fcsft.jsonl import read_jsonl
from fcsft.runner.lessons import NONE, memory_lines
from fcsft.runner.pipeline import Run, run_pipeline
from fcsft.testing.fake_openai import FakeOpenAI, Faults
from fcsft.testing.teacher import CALLS, generate_project, make_tasks, two_calls_then_answer
from kill_midway import kill_generate_midway

GROUNDED = "Only state numbers and names that the tool results contain"
WINDOW = 4


def careless_until_told(body: dict) -> str | dict:
    """Two lookups, then an answer that adds a number no tool returned, unless the system
    prompt carries the lesson against it."""
    reply = two_calls_then_answer(body)
    if isinstance(reply, dict):
        return reply
    system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
    return reply if GROUNDED in system else reply + " In all, 987654 records."


def project(root: Path, uri: str, tasks, enabled: bool = True) -> Path:
    path = generate_project(root, uri, tasks, model={"concurrency": 8})
    config = yaml.safe_load(path.read_text())
    config["memory"] = {"enabled": enabled, "window": WINDOW}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def generate(path: Path) -> dict:
    run = Run(load_config(path), path.parent)
    return run_pipeline(run, "generate", "generate")["generate"]


def system_of(record: dict) -> str:
    return record["messages"][0]["content"]


def test_later_tasks_are_generated_with_lessons_drawn_from_earlier_rejections(tmp_path):
    tasks = make_tasks(30)
    with FakeOpenAI(Faults(), reply=careless_until_told) as server:
        stats = generate(project(tmp_path, f"openai:m@{server.base_url}", tasks))

    stage = tmp_path / "run/generate"
    records = {r["meta"]["task_id"]: r for r in read_jsonl(stage / "out.jsonl")}
    ledger = [json.loads(line) for line in (stage / "_ledger.jsonl").open()]
    assert [e["id"] for e in ledger] == [t.id for t in tasks]
    # The first extraction runs once 4 trajectories are checked; task N waits for the first
    # N + 1 - WINDOW commits, so tasks 0..6 are generated before any lesson exists.
    first_taught = 4 + WINDOW - 1
    for index, task in enumerate(tasks):
        system = system_of(records[task.id])
        answer = records[task.id]["messages"][-1]["content"]
        if index < first_taught:
            assert GROUNDED not in system and "987654" in answer
            assert ledger[index]["notes"] == {"lessons": NONE}
        else:
            assert "Lessons from this run:" in system and GROUNDED in system
            assert "(logic.ungrounded_answer)" in system  # drawn from the rejections seen
            assert "987654" not in answer
            assert ledger[index]["notes"]["lessons"] != NONE

    teacher = (stage / "memory/teacher.md").read_text()
    assert GROUNDED in teacher and "4 of 4 trajectories rejected" in teacher
    assert "- [teacher](teacher.md): 1" in (stage / "memory/MEMORY.md").read_text()

    memory = stats["report"]["memory"]
    assert memory["rejection_rate_before_lessons"]["k"] == first_taught
    assert memory["rejection_rate_before_lessons"]["n"] == first_taught
    assert memory["rejection_rate_after_lessons"]["k"] == 0
    assert memory["rejection_rate_after_lessons"]["n"] == len(tasks) - first_taught
    assert memory["rejection_rate_after_lessons"]["ci95"][1] < 0.2
    assert memory["first_lessons_after"] == 4
    lines = memory_lines(stats["report"])
    assert lines[0].startswith("rejected before the first lessons: 7/7 (100.0%, 95% CI")
    assert lines[1].startswith("rejected after the first lessons: 0/23 (0.0%, 95% CI 0.0%-")


def test_with_memory_off_nothing_is_learned_and_the_records_carry_no_lessons(tmp_path):
    tasks = make_tasks(12)
    with FakeOpenAI(Faults(), reply=careless_until_told) as server:
        stats = generate(project(tmp_path, f"openai:m@{server.base_url}", tasks, enabled=False))
    stage = tmp_path / "run/generate"
    assert stats["out"] == 12 and "report" not in stats
    assert not (stage / "memory").exists()
    assert all("Lessons" not in system_of(r) for r in read_jsonl(stage / "out.jsonl"))
    assert all("notes" not in json.loads(line) for line in (stage / "_ledger.jsonl").open())


def test_sigkill_midway_then_resume_learns_and_writes_what_an_uninterrupted_run_does(tmp_path):
    tasks = make_tasks(80)
    faults = Faults(latency_s=0.01)
    with FakeOpenAI(faults, reply=careless_until_told) as server:
        uri = f"openai:m@{server.base_url}"
        clean = project(tmp_path / "clean", uri, tasks)
        generate(clean)

        killed = project(tmp_path / "killed", uri, tasks)
        committed = kill_generate_midway(killed, 5)
        assert 5 <= committed < 40, "the kill must land while lessons are still being learned"
        stats = generate(killed)

    assert stats["attempts"] == 2
    first, second = (tmp_path / name / "run/generate" for name in ("clean", "killed"))
    for name in ("out.jsonl", "rejected.jsonl", "memory/MEMORY.md", "memory/teacher.md"):
        assert (second / name).read_bytes() == (first / name).read_bytes(), name

    def notes(stage: Path) -> list:
        return [(e["id"], e["notes"]) for e in map(json.loads, (stage / "_ledger.jsonl").open())]

    assert notes(second) == notes(first)
    clean_stats = json.loads((first / "stats.json").read_text())
    assert stats["report"]["memory"] | {"folder": ""} == clean_stats["report"]["memory"] | {
        "folder": ""
    }
    taught = [r for r in read_jsonl(second / "out.jsonl") if GROUNDED in system_of(r)]
    assert len(taught) == len(tasks) - (4 + WINDOW - 1)
    assert all(sum(m["role"] == "tool" for m in r["messages"]) == CALLS for r in taught)


def test_a_task_whose_earlier_inputs_never_commit_stops_the_stage_instead_of_waiting(tmp_path):
    """A resumed run whose replay gave 2 commits, where task 5 (window 1) needs 5: with no
    commit coming, it stops the stage once `stall_s` passes without one; commits that keep
    coming, each within `stall_s`, let it wait for as long as they take."""
    from fcsft.jsonl import write_jsonl
    from fcsft.memory.config import MemoryConfig
    from fcsft.runner.lessons import RunLessons
    from fcsft.stage import StopStage
    from fcsft.validate.stage import ValidateConfig

    source = tmp_path / "tasks.jsonl"
    write_jsonl(source, (t.to_json() for t in make_tasks(8)))

    async def replayed(stall_s: float) -> RunLessons:
        live = RunLessons(
            MemoryConfig(enabled=True, window=1),
            ValidateConfig(),
            tmp_path / "memory",
            [source],
            stall_s=stall_s,
        )
        for ident in ("t00000", "t00001"):
            await live.committed(ident, [])
        return live

    async def stalled() -> None:
        live = await replayed(stall_s=0.3)
        with pytest.raises(StopStage, match="t00005 waits for the lessons of the first 5"):
            await asyncio.wait_for(live.for_task("t00005"), 20)

    async def slow_but_going() -> tuple[str, list[str]]:
        live = await replayed(stall_s=0.5)

        async def trickle() -> None:
            for ident in ("t00002", "t00003", "t00004"):
                await asyncio.sleep(0.3)
                await live.committed(ident, [])

        feeding = asyncio.create_task(trickle())
        started = time.monotonic()
        got = await asyncio.wait_for(live.for_task("t00005"), 20)
        await feeding
        assert time.monotonic() - started > 0.5  # longer than stall_s, in all
        return got

    asyncio.run(stalled())
    assert asyncio.run(slow_but_going()) == (NONE, [])
