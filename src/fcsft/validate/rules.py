"""Validation rules: small functions that say what is wrong with a trajectory, in words.

A rule takes the trajectory and the validation settings and returns the problems it found
(empty when it passes). In a trajectory with follow-ups the logic rules run per user turn
(each follow-up must be answered, each answer grounded, each user turn within the step
bound) and across turns: an answer may rest on anything the user said in any turn up to its
own, so a fact the user gave earlier needs no call to look it up. A problem found in a
conversation of several user turns names the turn (`user turn 2: ...`). Rules register under a stable reason code (`format.unknown_tool`); the
stage turns each rule's problems into one failed `Verdict` whose reason lists them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import TypeVar

from fcsft.agent import MAX_STEPS
from fcsft.records import Observation, ToolCall, Trajectory, Turn, canonical, exchanges, turns
from fcsft.text.grounding import ungrounded
from fcsft.tools.validation import argument_problems

Rule = Callable[[Trajectory, "Settings"], list[str]]
T = TypeVar("T")
RULES: dict[str, Rule] = {}

FAILURE_WORDS = (
    "error",
    "fail",
    "unable",
    "could not",
    "couldn't",
    "cannot",
    "can't",
    "not found",
    "unavailable",
    "not available",
    "no data",
    "did not",
    "didn't",
    "retry",
    "instead",
    "again",
    "invalid",
    "missing",
    "sorry",
)
"""Words by which a turn after a failed call says it noticed the failure."""


@dataclass(frozen=True)
class Settings:
    """Bounds and tolerances; `fcsft.validate.stage.ValidateConfig` documents each."""

    min_steps: int = 2
    max_steps: int = MAX_STEPS
    small_integers: int = 12


def rule(code: str) -> Callable[[Rule], Rule]:
    """Register a rule under its reason code."""

    def wrap(function: Rule) -> Rule:
        RULES[code] = function
        return function

    return wrap


def _once_per_trajectory(compute: Callable[[Trajectory], T]) -> Callable[[Trajectory], T]:
    """`compute`, remembered for the last trajectory it was given. Several rules read the same
    facts (a trajectory's turns, its calls checked against their schemas) and the stage runs
    every rule on one trajectory before the next, so each fact is worked out once a trajectory
    instead of once a rule. The value is shared: rules read it and never change it. Holding the
    trajectory keeps its id from being reused."""
    last: tuple[Trajectory, T] | None = None

    @wraps(compute)
    def remembered(trajectory: Trajectory) -> T:
        nonlocal last
        held = last
        if held is not None and held[0] is trajectory:
            return held[1]
        value = compute(trajectory)
        last = (trajectory, value)
        return value

    return remembered


# ------------------------------------------------------------------------- format


@_once_per_trajectory
def _schema_problems(trajectory: Trajectory) -> list[tuple[str, str]]:
    """(kind, message) for every call: kind is the JSON-schema keyword that failed."""
    tools = {tool.name: tool for tool in trajectory.tools}
    return [
        (kind, f"{call.id} {call.name}: {message}")
        for call in trajectory.calls
        if call.name in tools
        for kind, message in argument_problems(tools[call.name].parameters, call.arguments)
    ]


@rule("format.unknown_tool")
def unknown_tool(trajectory: Trajectory, settings: Settings) -> list[str]:
    names_ = {tool.name for tool in trajectory.tools}
    known = ", ".join(sorted(names_)) or "none"
    return [
        f"{c.id} calls {c.name!r}; tools: {known}" for c in trajectory.calls if c.name not in names_
    ]


@rule("format.missing_required")
def missing_required(trajectory: Trajectory, settings: Settings) -> list[str]:
    return [m for kind, m in _schema_problems(trajectory) if kind == "required"]


@rule("format.unknown_param")
def unknown_param(trajectory: Trajectory, settings: Settings) -> list[str]:
    return [
        m for kind, m in _schema_problems(trajectory) if kind in {"unknown", "additionalProperties"}
    ]


@rule("format.bad_type")
def bad_type(trajectory: Trajectory, settings: Settings) -> list[str]:
    return [
        m
        for kind, m in _schema_problems(trajectory)
        if kind not in {"required", "unknown", "additionalProperties"}
    ]


# -------------------------------------------------------------------------- logic


@_once_per_trajectory
def _turns(trajectory: Trajectory) -> list[Turn]:
    return turns(trajectory.steps)


def _step_count(trajectory: Trajectory) -> int:
    return len(_turns(trajectory))


def _by_user_turn(trajectory: Trajectory) -> list[tuple[str, list[Turn]]]:
    """Each user turn's assistant turns, with the prefix its problems carry: none when the
    trajectory holds one question, `user turn N: ` when it holds several."""
    groups = exchanges(_turns(trajectory))
    if len(groups) == 1:
        return [("", groups[0])]
    return [(f"user turn {k}: ", group) for k, group in enumerate(groups, start=1)]


@rule("logic.too_few_steps")
def too_few_steps(trajectory: Trajectory, settings: Settings) -> list[str]:
    if trajectory.meta.no_tool:
        return []
    count = _step_count(trajectory)
    if count < settings.min_steps:
        return [f"{count} assistant step(s); at least {settings.min_steps} (a call and an answer)"]
    return []


@rule("logic.too_many_steps")
def too_many_steps(trajectory: Trajectory, settings: Settings) -> list[str]:
    """Each user turn within the bound: a conversation may be long, one answer may not."""
    return [
        f"{where}{len(group)} assistant steps; at most {settings.max_steps}"
        for where, group in _by_user_turn(trajectory)
        if len(group) > settings.max_steps
    ]


@rule("logic.no_final_answer")
def no_final_answer(trajectory: Trajectory, settings: Settings) -> list[str]:
    """Every user turn is answered: the conversation's end, and each turn before a follow-up."""
    groups = _by_user_turn(trajectory)
    problems = [
        f"{where}the user spoke again before getting an answer"
        for where, group in groups[:-1]
        if group[-1].final is None
    ]
    if trajectory.final_answer is None:
        stop = (trajectory.meta.model_extra or {}).get("stop")
        problems.append(
            f"{groups[-1][0]}the trajectory ends without a final answer"
            + (f" (stopped: {stop})" if stop else "")
        )
    return problems


@rule("logic.redundant_call")
def redundant_call(trajectory: Trajectory, settings: Settings) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    failed: set[str] = set()
    for step in trajectory.steps:
        if isinstance(step, Observation) and step.failed:
            failed.add(step.call_id)
        if not isinstance(step, ToolCall):
            continue
        key = json.dumps([step.name, canonical(step.arguments)], sort_keys=True)
        earlier = seen.get(key)
        if earlier is not None and earlier not in failed:
            problems.append(f"{step.id} repeats {earlier} ({step.name} with the same arguments)")
        seen[key] = step.id
    return problems


def _acknowledges(text: str | None) -> bool:
    lowered = (text or "").lower()
    return any(word in lowered for word in FAILURE_WORDS)


@rule("logic.ignored_error")
def ignored_error(trajectory: Trajectory, settings: Settings) -> list[str]:
    """After a failed call the next turn must react: retry, change course, or say so."""
    found = _turns(trajectory)
    problems = []
    for number, turn in enumerate(found[:-1]):
        failed = [obs for obs in turn.observations if obs.failed]
        after: Turn = found[number + 1]
        if not failed or after.user is not None:
            continue  # a follow-up changes the subject; an unanswered turn is no_final_answer
        reacts = bool(after.calls) or _acknowledges(after.think) or _acknowledges(after.final)
        if not reacts:
            ids = ", ".join(obs.call_id for obs in failed)
            problems.append(f"{ids} failed, and the next step answers as if it had not")
    return problems


@rule("logic.ungrounded_answer")
def ungrounded_answer(trajectory: Trajectory, settings: Settings) -> list[str]:
    """Each answer's numbers, dates and names come from an observation made before it or from
    what the user said up to its turn. An answer before any call is not checked: with no tool
    there is nothing to be grounded in, and other rules judge that."""
    said = trajectory.user_turns
    place = "the question" if len(said) == 1 else "anything the user said"
    observed: list[str] = []
    called = False
    problems: list[str] = []
    for number, (where, group) in enumerate(_by_user_turn(trajectory)):
        for turn in group:
            called = called or bool(turn.calls)
            observed += [obs.content for obs in turn.observations]
        answer = group[-1].final
        if answer and called:
            sources = "\n".join(said[: number + 1] + observed)
            problems += [
                f"{where}{problem} appears in no observation or {place}"
                for problem in ungrounded(answer, sources, settings.small_integers)
            ]
    return problems


@rule("logic.should_not_call")
def should_not_call(trajectory: Trajectory, settings: Settings) -> list[str]:
    if trajectory.meta.no_tool and trajectory.calls:
        return [
            f"{len(trajectory.calls)} call(s) on a question that must be answered without tools"
        ]
    return []
