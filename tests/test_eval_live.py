"""The live layer: scripted models do held-out tasks against a real tool and are judged on the
outcome; then the layer through `evaluate`, its report and the base-vs-tuned comparison."""

import asyncio
import dataclasses
import json
import shutil

import pytest
import yaml

from fcsft.evaluate.live import gold_facts, judge, live_items, predict_live
from fcsft.evaluate.report import compare
from fcsft.evaluate.run import EvalPlan, evaluate
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.models.mock import MockProvider
from fcsft.records import FinalAnswer, Meta, Observation, ToolCall, Trajectory, User
from fcsft.runner.run import run_stage
from fcsft.tools import Toolbox
from pipeline_tools import revenue

TOOLBOX = Toolbox([revenue])
QUESTION = "What was Orrin Dynamics revenue in fiscal 2025?"
ORRIN = "Orrin Dynamics fiscal 2025 revenue: $812.4 million"


def call(tool, **arguments):
    return {"tool_calls": [{"name": tool, "arguments": arguments}]}


def trajectory(ident, question, steps, no_tool=False):
    return Trajectory(
        id=ident,
        question=question,
        tools=TOOLBOX.specs,
        steps=steps,
        meta=Meta(split="test", no_tool=no_tool),
    )


def orrin(ident="t-orrin", answer="Orrin Dynamics reported revenue of $812.4 million in 2025."):
    return trajectory(
        ident,
        QUESTION,
        [
            ToolCall(id="call_0", name="revenue", arguments={"company": "Orrin Dynamics"}),
            Observation(call_id="call_0", content=ORRIN),
            FinalAnswer(text=answer),
        ],
    )


def curated(path, *trajectories):
    render = get_format("openai").render
    write_jsonl(path, [render(t) for t in trajectories])
    return path


def the_item(tmp_path, gold=None):
    items = live_items(curated(tmp_path / "curated.jsonl", gold or orrin()), 10, [])
    assert len(items) == 1
    return items[0]


def test_facts_are_what_the_gold_answer_took_from_a_tool_not_from_the_user():
    gold = trajectory(
        "t-audit",
        "Who audits Orrin Dynamics, and what was its revenue in 2025?",
        [
            ToolCall(id="call_0", name="revenue", arguments={"company": "Orrin Dynamics"}),
            Observation(
                call_id="call_0",
                content="Orrin Dynamics: revenue $812.4 million in 2025 over 3 segments; "
                "auditor Pell Partners; 1,204 staff",
            ),
            FinalAnswer(
                text="Pell Partners audits Orrin Dynamics, whose 2025 revenue was $812.4 "
                "million across 3 segments."
            ),
        ],
    )
    # 2025 and Orrin Dynamics were in the question, 3 is a count, 1,204 is not in the answer.
    assert gold_facts(gold) == {"numbers": ["812.4"], "terms": ["pell partners"]}


def test_only_tasks_whose_gold_answer_carries_a_tool_fact_become_live_items(tmp_path):
    vague = orrin("t-vague", answer="The filing gives the figure above.")
    chat = trajectory("t-chat", "What is 2 plus 2?", [FinalAnswer(text="It is 4.")], no_tool=True)
    train = orrin("t-train").model_copy(update={"meta": Meta(split="train")})
    path = curated(tmp_path / "curated.jsonl", vague, orrin(), chat, train)
    [item] = live_items(path, 10, [])
    assert item["id"] == "t-orrin" and item["layer"] == "live"
    assert item["facts"] == {"numbers": ["812.4"], "terms": []}
    assert item["gold"] == [[{"name": "revenue", "arguments": {"company": "Orrin Dynamics"}}]]
    assert item["gold_steps"] == 2 and item["followups"] == []


def live_run(item, replies, max_steps=3):
    model = MockProvider(replies)
    prediction = asyncio.run(
        predict_live(model, "mock", item, TOOLBOX, max_tokens=64, max_steps=max_steps)
    )
    return prediction, judge(item, prediction)


RIGHT_CALL = call("revenue", company="Orrin Dynamics")


@pytest.mark.parametrize(
    "answer", ["Orrin Dynamics earned $812.4 million.", "About $0.81 billion in fiscal 2025."]
)
def test_a_model_that_answers_from_the_right_call_succeeds(tmp_path, answer):
    item = the_item(tmp_path)
    prediction, verdict = live_run(item, [RIGHT_CALL, answer])
    assert prediction["stops"] == ["final_answer"] and prediction["replies"] == 2
    # The tool really ran: its result is in the conversation the model saw.
    assert any(m.get("content") == ORRIN for m in prediction["messages"] if m["role"] == "tool")
    assert verdict == {
        "id": "t-orrin",
        "kind": "held_out_family",
        "success": True,
        "stopped": True,
        "valid_calls": True,
        "grounded": True,
        "correct": True,
        "steps": 2,
        "gold_steps": 2,
        "reason": None,
    }


def test_a_model_that_never_stops_fails_on_stopping(tmp_path):
    companies = ["Orrin Dynamics", "Vellum Bank", "Kestrel Mining", "Orrin Dynamics"]
    replies = [call("revenue", company=c) for c in companies]
    _, verdict = live_run(the_item(tmp_path), replies, max_steps=3)
    assert verdict["stopped"] is False and verdict["success"] is False
    assert verdict["reason"] == "stopped: step_limit" and verdict["steps"] == 3
    assert verdict["valid_calls"] is True


def test_a_model_that_answers_with_numbers_no_tool_gave_fails_on_grounding(tmp_path):
    _, verdict = live_run(the_item(tmp_path), [RIGHT_CALL, "Revenue was $915.0 million."])
    assert (verdict["stopped"], verdict["valid_calls"]) == (True, True)
    assert (verdict["grounded"], verdict["correct"], verdict["success"]) == (False, False, False)
    assert verdict["reason"] == "not from the tools or the user: number 915"


def test_a_right_answer_without_calling_is_not_grounded(tmp_path):
    _, verdict = live_run(the_item(tmp_path), ["Orrin Dynamics earned $812.4 million."])
    assert verdict["correct"] is True and verdict["grounded"] is False
    assert verdict["success"] is False and verdict["steps"] == 1


def test_a_model_that_calls_an_unknown_tool_fails_on_valid_calls(tmp_path):
    replies = [call("earnings", company="Orrin Dynamics"), RIGHT_CALL, "It was $812.4 million."]
    prediction, verdict = live_run(the_item(tmp_path), replies)
    failed = [m for m in prediction["messages"] if m["role"] == "tool" and m["is_error"]]
    assert "unknown tool 'earnings'" in failed[0]["content"]
    assert (verdict["stopped"], verdict["grounded"], verdict["correct"]) == (True, True, True)
    assert verdict["valid_calls"] is False and verdict["success"] is False
    assert verdict["reason"].startswith("invalid calls: 'earnings' is not a tool on offer")


def test_arguments_outside_the_schema_are_invalid_calls(tmp_path):
    replies = [call("revenue", name="Orrin Dynamics"), RIGHT_CALL, "It was $812.4 million."]
    _, verdict = live_run(the_item(tmp_path), replies)
    assert verdict["valid_calls"] is False and verdict["correct"] is True
    assert "'company' is a required property" in verdict["reason"]
    assert "no parameter 'name'" in verdict["reason"]


def test_a_follow_up_is_asked_after_the_answer_and_both_answers_are_judged(tmp_path):
    vellum = "Vellum Bank fiscal 2025 revenue: $1930.0 million"
    gold = trajectory(
        "t-two",
        QUESTION,
        [
            ToolCall(id="call_0", name="revenue", arguments={"company": "Orrin Dynamics"}),
            Observation(call_id="call_0", content=ORRIN),
            FinalAnswer(text="It was $812.4 million."),
            User(text="And Vellum Bank?"),
            ToolCall(id="call_1", name="revenue", arguments={"company": "Vellum Bank"}),
            Observation(call_id="call_1", content=vellum),
            FinalAnswer(text="Vellum Bank had $1,930 million."),
        ],
    )
    item = the_item(tmp_path, gold)
    assert item["followups"] == ["And Vellum Bank?"]
    assert item["facts"]["numbers"] == ["1930", "812.4"]
    both = [RIGHT_CALL, "It was $812.4 million.", call("revenue", company="Vellum Bank")]
    prediction, verdict = live_run(item, [*both, "Vellum Bank: $1.93 billion."])
    assert prediction["stops"] == ["final_answer", "final_answer"]
    assert [m["content"] for m in prediction["messages"] if m["role"] == "user"] == [
        QUESTION,
        "And Vellum Bank?",
    ]
    assert verdict["success"] is True and verdict["steps"] == 4
    # Answering only the first question leaves the second fact out and the follow-up open.
    _, verdict = live_run(item, [*both, call("revenue", company="Kestrel Mining"), "Done."])
    assert verdict["correct"] is False and verdict["stopped"] is True
    assert verdict["reason"] == "gold facts missing from the answer: 1930"


def plan_for(tmp_path, side, script, live):
    (tmp_path / f"{side}.yaml").write_text(yaml.safe_dump(script))
    items = tmp_path / "items.jsonl"
    return EvalPlan(
        model=f"mock:{tmp_path / f'{side}.yaml'}",
        out_dir=tmp_path / side,
        items=[items],
        max_tokens=64,
        live=live,
        tools=TOOLBOX,
        live_steps=3,
    )


def test_evaluate_runs_the_live_layer_reports_it_and_pairs_base_with_tuned(tmp_path):
    live = tmp_path / "live.jsonl"
    write_jsonl(live, [the_item(tmp_path)])
    write_jsonl(
        tmp_path / "items.jsonl",
        [{"id": "q1", "layer": "adversarial", "question": "Hello", "gold": []}],
    )
    # base calls the tool again and again; tuned calls once and answers from the result.
    loops = [call("revenue", company=c) for c in ("Vellum Bank", "Kestrel Mining")]
    base = plan_for(tmp_path, "base", ["Hi.", RIGHT_CALL, *loops], live)
    tuned = plan_for(tmp_path, "tuned", ["Hi.", RIGHT_CALL, "It was $812.4 million."], live)
    reports = {p.out_dir.name: evaluate(p, run_stage) for p in (base, tuned)}
    assert reports["tuned"]["live"]["rates"]["success"]["k"] == 1
    assert reports["base"]["live"]["rates"]["success"]["k"] == 0
    assert reports["base"]["live"]["first_failure"] == {"stopped": 1}
    assert reports["base"]["live"]["steps"]["mean"] == 3
    assert "Live: task success" in (tmp_path / "tuned" / "report.html").read_text()
    result = compare(tmp_path / "base", tmp_path / "tuned", tmp_path)
    success = result["live"]["metrics"]["success"]
    assert (success["base"]["k"], success["tuned"]["k"], success["n"]) == (0, 1, 1)
    assert (success["gained"], success["lost"], success["difference"]) == (1, 0, 1.0)
    assert success["ci95_low"] is None  # one pair carries no interval
    assert "Live: task success" in (tmp_path / "compare.html").read_text()
    assert json.loads((tmp_path / "compare.json").read_text())["live"] == result["live"]

    # Asked again with nothing left in the script: the predictions are resumed and the replies
    # cached, so the same verdicts come back without a new request.
    before = list(read_jsonl(tmp_path / "tuned" / "live_scores.jsonl"))
    shutil.rmtree(tmp_path / "tuned" / "live")
    (tmp_path / "tuned.yaml").write_text("[]")
    again = evaluate(tuned, run_stage)
    assert list(read_jsonl(tmp_path / "tuned" / "live_scores.jsonl")) == before
    assert again["live"]["rates"] == reports["tuned"]["live"]["rates"]

    # Asked without the live layer, the report and the comparison have none.
    without = evaluate(dataclasses.replace(tuned, live=None), run_stage)
    assert "live" not in without and "live" not in compare(base.out_dir, tuned.out_dir, tmp_path)


def test_the_evaluate_step_runs_the_live_layer_on_the_projects_own_tools(tmp_path):
    from clirun import fcsft
    from test_pipeline import write_project

    project = write_project(tmp_path)
    # base answers without looking; tuned looks the figure up and then asks again and again.
    again = {"match": "revenue", **call("revenue", company="Orrin Dynamics")}
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump([again] * 60 + ["No tool."] * 60))
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(["I cannot look that up."] * 200))
    config = yaml.safe_load(project.read_text())
    config["generate"] = {"answer": "template"}  # gold answers that list the tools' results
    config["evaluate"] = {
        "model": "mock:tuned.yaml",
        "base": "mock:base.yaml",
        "adversarial": 2,
        "live": 10,
        "live_steps": 4,
    }
    project.write_text(yaml.safe_dump(config))
    assert fcsft("run", project, "--until", "export", cwd=tmp_path, timeout=300).returncode == 0
    result = fcsft("run", project, "--from", "evaluate", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "run"
    held_out = [
        c
        for c in read_jsonl(run / "curate" / "out.jsonl")
        if c["meta"]["split"] == "test" and not c["meta"].get("no_tool")
    ]
    items = list(read_jsonl(run / "evaluate" / "live.jsonl"))
    assert held_out and sorted(i["id"] for i in items) == sorted(c["meta"]["id"] for c in held_out)
    # The tuned model's calls ran on the project's own tool (pipeline_tools.revenue).
    predictions = list(read_jsonl(run / "evaluate" / "tuned" / "live" / "out.jsonl"))
    results = [m["content"] for p in predictions for m in p["messages"] if m["role"] == "tool"]
    assert results and set(results) == {"Orrin Dynamics fiscal 2025 revenue: $812.4 million"}
    assert {tuple(p["stops"]) for p in predictions} == {("repeated_call",)}
    live = json.loads((run / "evaluate" / "compare.json").read_text())["live"]
    assert live["n"] == len(items)
    for side, first in (("base", "correct"), ("tuned", "stopped")):
        report = json.loads((run / "evaluate" / side / "report.json").read_text())
        assert report["live"]["first_failure"] == {first: len(items)}
    assert "eval live: success +0.0% (tuned - base)" in result.stdout
