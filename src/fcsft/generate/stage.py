"""The generate stage: a teacher solves every task with real tools.

Per task it writes one trajectory per sample (validation later keeps the best valid one), or
one rejected record saying why there is none. Tasks whose gold plan came from an expert can
use the `reference` teacher: the plan's calls run against the real tools and the model only
writes the final answer, so expert knowledge becomes trajectories without a paid teacher.
A cost budget ends the run cleanly when spent; the next run picks up where it stopped.

A task with follow-ups is a conversation: the teacher's agent loop answers the question, then
each follow-up on the conversation so far, and the trajectory holds every user turn (the
reference teacher, whose plan answers one question, never takes such a task). Stateful tools
(`environment:` entries) run on an instance of their own per trajectory, loaded from the
task's `environment`, and the state the calls left goes into `meta.state`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import Field

from fcsft.agent import MAX_STEPS, Limits, ToolLike, run_agent
from fcsft.formats import get_format
from fcsft.models.ask import Answer, ask
from fcsft.models.client import records_at_once
from fcsft.records import (
    FinalAnswer,
    Meta,
    Observation,
    Task,
    Think,
    ToolCall,
    Trajectory,
    Verdict,
)
from fcsft.section import Section
from fcsft.stage import Outcome, Stage, StopStage
from fcsft.step import LiveLessons
from fcsft.tools.environment import Session, for_trajectory

SYSTEM = """\
You are a careful analyst who answers with evidence. Use the tools whenever the answer depends \
on data you do not have, one step at a time, and think briefly before each call. Base the \
final answer only on what the tools returned; if a call fails, say so or try another way. \
If the question needs no tool, answer it directly."""

ANSWER_PROMPT = """\
Question: {question}

Tool results:
{results}

Using only these results, answer the question in one or two sentences. Reply with the answer \
only."""


class GenerateConfig(Section):
    model: str = "teacher"
    """Role (a key of `models`) of the teacher."""
    protocol: Literal["tagged", "native"] = "tagged"
    """How tool calls pass between fcsft and the teacher (as `fcsft eval --protocol`):
    `tagged`, the teacher writes <think>/<tool_call> text; `native`, API function calling."""
    system: str = SYSTEM
    """System prompt; with `protocol: tagged` the tool descriptions and the format are appended
    to it."""
    samples: int = Field(1, ge=1)
    """Trajectories per task (validation keeps the best valid one)."""
    temperature: float = Field(0.7, ge=0)
    """Sampling temperature of the teacher."""
    max_steps: int = Field(MAX_STEPS, ge=1)
    """Assistant replies per user turn before the loop gives up (a trajectory with follow-ups
    gets this many for each user message); validation accepts as many unless
    `validate.max_steps` says otherwise."""
    max_tokens: int = Field(8192, ge=1)
    """Completion tokens per trajectory."""
    reply_tokens: int = Field(1024, ge=1)
    """Completion tokens per reply."""
    reference: Literal["expert", "plan", "off"] = "expert"
    """Which tasks the reference teacher takes (runs the gold plan against the real tools and
    asks the model only for the answer): those from expert seeds, every task with a plan or
    marked should-not-call (whose gold plan is no call), or none."""
    think: Literal["template", "none"] = "template"
    """The reference teacher's thinking before each call: a one-line template, or none (the
    model then learns to call directly, and its replies are shorter)."""
    answer: Literal["model", "template"] = "model"
    """Who writes the reference teacher's final answer: the model (from the question and the
    results, at most `reply_tokens`), or a template that lists the results (free and instant,
    for data where only the calls matter)."""
    decline: str | None = None
    """The reference teacher's reply to a should-not-call task: none asks the model (the
    question alone); a text is used as written. A weak teacher rambles at requests that no tool
    on offer can serve, and the rambling, not the choice not to call, is then most of what the
    student learns from such a task."""
    plan_turns: Literal["sequential", "parallel"] = "sequential"
    """How the reference teacher makes a plan's calls: one per turn, each after the previous
    result (dependent steps), or all in one turn (parallel calls, as in BFCL's items)."""
    budget: float | None = Field(None, ge=0)
    """Stop cleanly once this much has been spent (in the price table's currency); with
    `executor: ray` each worker counts its own spending."""
    executor: Literal["local", "ray"] = "local"
    """Where tasks run: `local` (this process) or `ray` (workers of a Ray cluster, each with its
    own model client and tools; the run directory is the same). Ray needs
    `pip install 'fcsft[ray]'`; on several machines, the project folder at the same path on
    each (the run directory stays with this process; see `fcsft.runner.ray`)."""
    ray_address: str | None = None
    """The Ray cluster to join (`auto`, `ray://HOST:10001`); none starts a local one."""
    ray_workers: int | None = Field(None, ge=1)
    """Ray workers (actors); none: one per CPU of the cluster."""
    lessons: list[str] = Field(default_factory=list)
    """Lessons from earlier runs, appended to the system prompt (see `fcsft memory`)."""

    def system_prompt(self, learned: Sequence[str] = ()) -> str:
        """The system prompt with the lessons of earlier runs and those `learned` in this one."""
        prompt = self.system
        for heading, lessons in (("earlier runs", self.lessons), ("this run", learned)):
            if lessons:
                prompt += f"\n\nLessons from {heading}:\n" + "\n".join(f"- {x}" for x in lessons)
        return prompt


RUN_SETTINGS = {"budget", "executor", "ray_address", "ray_workers"}


class Budget:
    """Money spent across concurrent tasks; raises StopStage once the limit is reached."""

    def __init__(self, limit: float | None):
        self.limit = limit
        self.spent = 0.0

    def charge(self, amount: float) -> None:
        self.spent += amount

    def check(self) -> None:
        if self.limit is not None and self.spent >= self.limit:
            raise StopStage(f"budget of {self.limit:g} spent ({self.spent:.4f})")


def _meta(task: Task, sample: int, teacher: str) -> Meta:
    return Meta(
        task_id=task.id,
        family=task.family,
        how=task.how,
        source=task.source,
        no_tool=task.no_tool,
        sample=sample,
        teacher=teacher,
        related=task.related,
    )


async def _run_call(tools: Mapping[str, ToolLike], call: Any) -> tuple[str, bool]:
    tool = tools.get(call.name)
    if tool is None:
        return f"unknown tool {call.name!r}", True
    result = await tool.run(call.arguments)
    return result.content, result.error


def _usage_counts(trajectory: Trajectory) -> dict[str, float]:
    usage = trajectory.meta.usage
    if usage is None:
        return {}
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cost": usage.cost,
        "steps": len(trajectory.calls),
    }


def _outcome(trajectory: Trajectory, session: Session) -> Outcome:
    trajectory.meta.state = session.state()
    extra = trajectory.meta.model_extra or {}
    # The loop's wall time differs from run to run: in the record it would make a resumed run
    # write other bytes than an uninterrupted one. Stats keep the sum.
    latency = extra.pop("latency_s", None)
    counts = _usage_counts(trajectory) | ({} if latency is None else {"latency_s": latency})
    record = get_format("openai").render(trajectory)
    if extra.get("stop") == "model_error":
        verdict = Verdict(
            stage="generate",
            rule="generate.model_error",
            passed=False,
            reason=str(extra.get("error") or "the model failed without saying why"),
        )
        # A request that failed is the model's doing, not the task's: try it again next run.
        return Outcome(record, [verdict], counts, retry="error" in extra)
    return Outcome(record, counts=counts | {"trajectories": 1})


def generate_stage(
    config: GenerateConfig,
    model: Any,
    model_name: str,
    tools: Mapping[str, ToolLike],
    live: LiveLessons | None = None,
) -> Stage:
    """The stage; with `live` (memory on) each task is generated with the lessons it hands
    out for that task, whose version goes into the task's ledger line."""
    budget = Budget(config.budget)
    limits = Limits(
        max_steps=config.max_steps, max_tokens=config.max_tokens, reply_tokens=config.reply_tokens
    )

    async def process(obj: dict[str, Any]) -> list[Outcome]:
        budget.check()
        task = Task.from_json(obj)
        learned: list[str] = []
        notes: dict[str, str] = {}
        if live is not None:
            version, learned = await live.for_task(task.id)
            notes = {"lessons": version}
        system = config.system_prompt(learned)
        task_tools = {n: t for n, t in tools.items() if not task.tools or n in task.tools}

        def session() -> Session:
            return for_trajectory(task_tools, task.environment, f"task {task.id}")

        by_reference = config.reference == "plan" or (
            config.reference == "expert" and task.source == "expert"
        )
        if by_reference and (task.plan or task.no_tool) and not task.followups:
            # A should-not-call task's gold plan is no call; the template has no results to
            # list, so the model answers it whatever `answer` says, unless `decline` is set.
            by_model = config.answer == "model" or not task.plan
            opened = session()
            trajectory = await reference_trajectory(
                task,
                opened.tools,
                model,
                model_name,
                system,
                think=config.think == "template",
                parallel=config.plan_turns == "parallel",
                lessons=[*config.lessons, *learned],
                answer_tokens=config.reply_tokens if by_model else 0,
                decline=config.decline,
            )
            outcomes = [_outcome(trajectory, opened)]
        else:

            async def one(sample: int) -> Outcome:
                opened = session()
                trajectory = await run_agent(
                    model,
                    model_name,
                    task.question,
                    opened.tools,
                    ident=f"{task.id}#{sample}",
                    followups=task.followups,
                    system=system,
                    protocol=config.protocol,
                    limits=limits,
                    temperature=config.temperature,
                    sample=sample,
                    meta=_meta(task, sample, model_name),
                )
                return _outcome(trajectory, opened)

            outcomes = list(await asyncio.gather(*map(one, range(config.samples))))
        budget.charge(sum(o.counts.get("cost", 0.0) for o in outcomes))
        for outcome in outcomes:
            outcome.notes = notes
        return outcomes

    # Budget and executor change how far and where a run goes, not what it writes.
    output_settings = config.model_dump(mode="json", exclude=RUN_SETTINGS)
    config_key = output_settings | {
        "model_name": model_name,
        "tools": sorted(tools),
    }
    if live is not None:
        config_key["memory"] = live.key
    # A task asks the teacher one request at a time: as many tasks in flight as the teacher
    # takes requests keeps every request slot busy.
    return Stage("generate", process, config=config_key, parallel=records_at_once(model))


async def reference_trajectory(
    task: Task,
    tools: Mapping[str, ToolLike],
    model: Any,
    model_name: str,
    system: str,
    *,
    think: bool = True,
    parallel: bool = False,
    lessons: Sequence[str] = (),
    answer_tokens: int = 400,
    decline: str | None = None,
) -> Trajectory:
    """The gold plan run against the real tools; the model writes only the final answer (a
    template lists the results instead when `answer_tokens` is 0). With no plan (a
    should-not-call task) the answer is `decline` if given, else the model is asked the
    question alone, without the tools' long descriptions, and its reply is the answer."""
    plan = task.plan or []
    turns = [list(enumerate(plan))] if parallel else [[(k, c)] for k, c in enumerate(plan)]
    steps: list[Any] = []
    results = []
    for turn in turns:
        outcomes = await asyncio.gather(*(_run_call(tools, call) for _, call in turn))
        for index, call in turn:
            if think:
                arguments = json.dumps(call.arguments, ensure_ascii=False)
                steps.append(Think(text=f"I need {call.name} with {arguments}."))
            steps.append(ToolCall(name=call.name, arguments=call.arguments, id=f"call_{index}"))
        for (index, call), (result_text, error) in zip(turn, outcomes, strict=True):
            steps.append(Observation(content=result_text, call_id=f"call_{index}", error=error))
            results.append(f"[{index + 1}] {call.name}: {result_text}")
    if results:
        prompt = ANSWER_PROMPT.format(question=task.question, results="\n".join(results))
    else:
        prompt = task.question
    if lessons:
        prompt += "\n\nLessons from earlier runs:\n" + "\n".join(f"- {x}" for x in lessons)
    if not plan and decline:
        answer = Answer(text=decline)
    elif answer_tokens > 0:
        answer = await ask(model, model_name, prompt, temperature=0.0, max_tokens=answer_tokens)
    else:
        answer = Answer(text="Done. " + " ".join(results))
    if not answer.text and answer.error is None:
        answer.error = (
            f"the answer request was answered with {answer.calls} tool call(s) and no text"
            if answer.calls
            else "the answer request was answered with no text"
        )
    meta = _meta(task, 0, f"reference+{model_name}")
    usage = answer.usage or {}
    fields = meta.model_dump() | {
        "stop": "final_answer" if answer.text else "model_error",
        "usage": {
            "prompt_tokens": int(usage.get("prompt_tokens", 0)),
            "completion_tokens": int(usage.get("completion_tokens", 0)),
            "cost": usage.get("cost", 0.0),
        },
    }
    if answer.error:
        fields["error"] = answer.error
    if answer.text:
        steps.append(FinalAnswer(text=answer.text))
    return Trajectory(
        id=f"{task.id}#ref",
        question=task.question,
        system=system,
        tools=[t.spec for t in tools.values()],
        steps=steps,
        meta=Meta(**fields),
    )
