"""The generate stage with a scripted teacher and real tools: samples, reference, budget, resume."""

import re

from fcsft.formats import get_format
from fcsft.generate.stage import GenerateConfig, generate_stage
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.models.base import ChatResponse, ModelError
from fcsft.records import Call, Task
from fcsft.runner.run import run_stage
from fcsft.tools import Toolbox


def revenue(company: str) -> str:
    """Annual revenue of a company.

    Args:
        company: The company's name.
    """
    table = {"Orrin Dynamics": "Orrin Dynamics revenue: $812.4 million"}
    if company not in table:
        raise KeyError(f"no filing for {company}")
    return table[company]


TASKS = [
    Task(id="t1", family="t1", question="Revenue of Orrin Dynamics?", source="log"),
    Task(
        id="t2",
        family="t2",
        question="Revenue of Orrin Dynamics, per the filing?",
        source="expert",
        plan=[Call(name="revenue", arguments={"company": "Orrin Dynamics"})],
    ),
    Task(id="t3", family="t3", question="What is 2+2?", no_tool=True, plan=[]),
    Task(id="t4", family="t4", question="Revenue of Nobody Inc?", source="log"),
]


class Teacher:
    def __init__(self, price=0.0):
        self.calls = 0
        self.price = price

    async def chat(self, request):
        self.calls += 1
        last = request.messages[-1]["content"]
        if "Tool results:" in last:  # the reference teacher's answer prompt
            number = re.search(r"\$[\d.,]+ million", last).group(0)
            text = f"Orrin Dynamics reported revenue of {number}."
        elif "Nobody" in request.messages[:2][-1]["content"]:  # the question
            raise ModelError("HTTP 500 after 6 retries")
        elif "2+2" in last:
            text = "<final_answer>4</final_answer>"
        elif request.messages[-1]["role"] == "tool":
            figure = re.search(r"\$[\d.,]+ million", last).group(0)
            text = f"<final_answer>It was {figure}.</final_answer>"
        else:
            text = (
                '<think>Look it up.</think><tool_call>{"name": "revenue", "arguments": '
                '{"company": "Orrin Dynamics"}}</tool_call>'
            )
        return ChatResponse(
            message={"content": text},
            prompt_tokens=100,
            completion_tokens=20,
            extra={"cost": self.price},
        )


def run(tmp_path, config, teacher):
    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, (t.to_json() for t in TASKS))
    stage = generate_stage(config, teacher, "teacher-x", Toolbox([revenue]))
    return run_stage(stage, tmp_path / "run", [tasks])


def test_every_task_ends_in_trajectories_or_one_failure(tmp_path):
    stats = run(tmp_path, GenerateConfig(samples=2), Teacher())
    assert (stats["in"], stats["out"], stats["rejected"]) == (4, 5, 2)
    assert stats["reasons"] == {"generate.model_error": 2}  # t4's two samples
    out = [get_format("openai").parse(o) for o in read_jsonl(tmp_path / "run/generate/out.jsonl")]
    by_id = {t.id: t for t in out}
    assert set(by_id) == {"t1#0", "t1#1", "t2#ref", "t3#0", "t3#1"}
    agent = by_id["t1#0"]
    assert agent.final_answer == "It was $812.4 million." and agent.meta.task_id == "t1"
    assert agent.meta.usage.prompt_tokens == 200 and agent.meta.family == "t1"
    reference = by_id["t2#ref"]
    assert [s.type for s in reference.steps] == [
        "think",
        "tool_call",
        "observation",
        "final_answer",
    ]
    assert reference.steps[2].content == "Orrin Dynamics revenue: $812.4 million"
    assert reference.meta.teacher == "reference+teacher-x"
    assert by_id["t3#0"].calls == [] and by_id["t3#0"].meta.no_tool
    assert stats["counts"]["prompt_tokens"] == 100 * (4 + 1 + 2)


def test_budget_stops_cleanly_and_resume_finishes(tmp_path):
    teacher = Teacher(price=1.0)
    stats = run(tmp_path, GenerateConfig(budget=1.5), teacher)
    assert stats["stopped"].startswith("budget of 1.5 spent")
    assert stats["in"] == 1  # t1 spent 2.0 in two replies; t2 found the budget gone
    assert not (tmp_path / "run/generate/_done.json").exists()
    before = teacher.calls
    stats = run(tmp_path, GenerateConfig(budget=None), teacher)
    assert stats["in"] == 4 and "stopped" not in stats and stats["attempts"] == 2
    assert teacher.calls - before == 1 + 1 + 1  # t2's answer, t3's reply, t4's failed request


def test_reference_plans_can_run_in_one_parallel_turn_without_thinking(tmp_path):
    """BFCL-style items: every call of the plan in one turn, no templated thinking, and lessons
    reach the answer prompt."""
    tasks = tmp_path / "tasks.jsonl"
    plan = [
        Call(name="revenue", arguments={"company": "Orrin Dynamics"}),
        Call(name="revenue", arguments={"company": "Nobody Inc"}),
    ]
    write_jsonl(tasks, [Task(id="p", family="p", question="Both?", plan=plan).to_json()])
    teacher = Teacher()
    prompts = []
    original = teacher.chat

    async def chat(request):
        prompts.append(request.messages[-1]["content"])
        return await original(request)

    teacher.chat = chat
    config = GenerateConfig(
        reference="plan", think="none", plan_turns="parallel", lessons=["Quote the filing."]
    )
    stage = generate_stage(config, teacher, "teacher-x", Toolbox([revenue]))
    run_stage(stage, tmp_path / "run", [tasks])
    (record,) = read_jsonl(tmp_path / "run/generate/out.jsonl")
    trajectory = get_format("openai").parse(record)
    assert [s.type for s in trajectory.steps] == [
        "tool_call",
        "tool_call",
        "observation",
        "observation",
        "final_answer",
    ]
    assert trajectory.steps[3].error  # the failing call's error is kept as its observation
    assert len(record["messages"]) == 2 + 1 + 2 + 1  # one assistant turn with both calls
    assert prompts and "- Quote the filing." in prompts[-1]


def test_reference_teacher_answers_should_not_call_tasks_without_tools(tmp_path):
    """A should-not-call task's gold plan is no call: with `reference: plan` the model gets the
    question alone (no tool descriptions) and its reply is the answer, even with template
    answers for the tasks that do call."""
    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, [TASKS[2].to_json()])
    teacher = Teacher()
    seen = _recording(teacher)
    config = GenerateConfig(reference="plan", answer="template", reply_tokens=32)
    stage = generate_stage(config, teacher, "teacher-x", Toolbox([revenue]))
    stats = run_stage(stage, tmp_path / "run", [tasks])
    assert stats["out"] == 1
    assert [r.messages for r in seen] == [[{"role": "user", "content": "What is 2+2?"}]]
    (record,) = read_jsonl(tmp_path / "run/generate/out.jsonl")
    trajectory = get_format("openai").parse(record)
    assert trajectory.calls == [] and trajectory.meta.no_tool
    assert trajectory.final_answer == "<final_answer>4</final_answer>"
    assert trajectory.meta.teacher == "reference+teacher-x"
    assert [t.name for t in trajectory.tools] == ["revenue"]  # still offered, not called


def test_reference_teacher_declines_with_the_configured_text(tmp_path):
    """With `decline` set, a should-not-call task's answer is that text and the model is not
    asked at all; tasks with a plan are untouched by it."""
    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, [TASKS[2].to_json()])
    teacher = Teacher()
    asked = _recording(teacher)
    text = "No function on offer does what this asks, so I have not called one."
    config = GenerateConfig(reference="plan", answer="template", decline=text)
    stats = run_stage(
        generate_stage(config, teacher, "teacher-x", Toolbox([revenue])), tmp_path / "run", [tasks]
    )
    assert stats["out"] == 1 and asked == []
    (record,) = read_jsonl(tmp_path / "run/generate/out.jsonl")
    trajectory = get_format("openai").parse(record)
    assert trajectory.calls == [] and trajectory.meta.no_tool
    assert trajectory.final_answer == text


def _recording(teacher: Teacher) -> list:
    """The requests `teacher` is sent from now on, in order."""
    requests = []
    original = teacher.chat

    async def chat(request):
        requests.append(request)
        return await original(request)

    teacher.chat = chat
    return requests


def test_a_reference_answer_made_of_tool_calls_is_rejected_with_that_reason(tmp_path):
    """The answer request offers no tools; a teacher that calls one anyway gives no answer,
    and the rejection says so rather than carrying an empty reason."""
    tasks = tmp_path / "tasks.jsonl"
    write_jsonl(tasks, [TASKS[1].to_json()])

    class CallsOnly:
        async def chat(self, request):
            call = {
                "id": "call_0",
                "type": "function",
                "function": {"name": "revenue", "arguments": '{"company": "Orrin Dynamics"}'},
            }
            return ChatResponse(message={"content": None, "tool_calls": [call]})

    config = GenerateConfig(reference="plan")
    stats = run_stage(
        generate_stage(config, CallsOnly(), "teacher-x", Toolbox([revenue])),
        tmp_path / "run",
        [tasks],
    )
    assert stats["reasons"] == {"generate.model_error": 1}
    (row,) = read_jsonl(tmp_path / "run/generate/rejected.jsonl")
    assert row["reasons"][0]["reason"] == (
        "the answer request was answered with 1 tool call(s) and no text"
    )
