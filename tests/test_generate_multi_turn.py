"""Generation of conversations: the teacher answers every user turn of a task on the
conversation so far, validation accepts the result, and a crash midway resumes exactly."""

import json
from collections import Counter

from fcsft.config import load_config
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl
from fcsft.records import User
from fcsft.runner.pipeline import Run, run_pipeline
from fcsft.testing.fake_openai import FakeOpenAI, Faults
from fcsft.testing.teacher import generate_project, lookup, make_tasks, two_calls_then_answer
from kill_midway import kill_generate_midway
from test_stage import files


def test_a_task_of_three_user_turns_becomes_a_three_turn_trajectory_that_validates(tmp_path):
    tasks = make_tasks(6, followups=2)
    with FakeOpenAI(Faults(), reply=two_calls_then_answer) as server:
        project = generate_project(tmp_path, f"openai:m@{server.base_url}", tasks)
        results = run_pipeline(Run(load_config(project), project.parent), "generate", "validate")
        served = server.stats()

    assert results["generate"]["out"] == 6 and results["validate"]["out"] == 6
    assert results["validate"]["rejected"] == 0
    # Three requests a user turn: two calls, then the answer.
    assert served["received"] == 6 * 3 * 3
    by_task = {t.id: t for t in tasks}
    for record in read_jsonl(tmp_path / "run/validate/out.jsonl"):
        trajectory = get_format("openai").parse(record)
        task = by_task[trajectory.meta.task_id]
        assert trajectory.user_turns == [task.question, *task.followups]
        assert [s.text for s in trajectory.steps if isinstance(s, User)] == task.followups
        # Each turn looks up its own user message, and its answer quotes those two results.
        answers = [s.text for s in trajectory.steps if s.type == "final_answer"]
        for said, answer in zip(trajectory.user_turns, answers, strict=True):
            expected = "; ".join(lookup(f"{said} #{k}") for k in range(2))
            assert answer == f"From the records: {expected}"
        assert len({call.id for call in trajectory.calls}) == 6


def test_a_conversation_cut_off_in_a_later_turn_is_not_validated(tmp_path):
    """A teacher that keeps calling tools when asked item 0's last follow-up leaves it
    unanswered at the step limit: that trajectory ends there and validation says which turn
    failed; the other conversations pass."""

    def stuck_on_the_last_turn(body):
        last = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        if "item 0, part 2" in last:
            count = sum(1 for m in body["messages"] if m["role"] == "tool")
            return {
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{count}",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "arguments": json.dumps({"key": str(count)}),
                        },
                    }
                ],
            }
        return two_calls_then_answer(body)

    with FakeOpenAI(Faults(), reply=stuck_on_the_last_turn) as server:
        project = generate_project(
            tmp_path, f"openai:m@{server.base_url}", make_tasks(3, followups=2), max_steps=3
        )
        results = run_pipeline(Run(load_config(project), project.parent), "generate", "validate")

    assert results["generate"]["out"] == 3 and results["validate"]["out"] == 2
    stops = {
        r["meta"]["task_id"]: r["meta"]["stop"]
        for r in read_jsonl(tmp_path / "run/generate/out.jsonl")
    }
    assert stops == {"t00000": "step_limit", "t00001": "final_answer", "t00002": "final_answer"}
    [failure] = read_jsonl(tmp_path / "run/validate/rejected.jsonl")
    assert failure["record"]["meta"]["task_id"] == "t00000"
    assert [m["role"] for m in failure["record"]["messages"]].count("user") == 3
    reasons = [verdict["reason"] for verdict in failure["reasons"]]
    assert reasons and all(reason.startswith("user turn 3: ") for reason in reasons), reasons


def test_sigkill_midway_through_conversations_then_resume_equals_an_uninterrupted_run(tmp_path):
    faults = Faults(latency_s=0.005, rate_429=0.02, rate_500=0.01)
    faults.retry_after = "0"
    tasks = make_tasks(60, followups=2)
    with FakeOpenAI(faults, reply=two_calls_then_answer) as server:
        uri = f"openai:m@{server.base_url}"
        settings = {"model": {"max_retries": 8, "concurrency": 8}}
        clean = generate_project(tmp_path / "clean", uri, tasks, **settings)
        run_pipeline(Run(load_config(clean), clean.parent), "generate", "generate")

        killed = generate_project(tmp_path / "killed", uri, tasks, **settings)
        committed = kill_generate_midway(killed, 15)
        assert 15 <= committed < 60, "the kill must land midway"
        stats = run_pipeline(Run(load_config(killed), killed.parent), "generate", "generate")

    generate = stats["generate"]
    assert generate["in"] == 60 and generate["attempts"] == 2
    assert files(killed.parent / "run/generate") == files(clean.parent / "run/generate")
    out = list(read_jsonl(killed.parent / "run/generate/out.jsonl"))
    assert Counter(r["meta"]["task_id"] for r in out) == Counter(t.id for t in tasks)
    assert all([m["role"] for m in r["messages"]].count("user") == 3 for r in out)
