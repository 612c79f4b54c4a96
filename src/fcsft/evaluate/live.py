"""The live layer: the model under test runs the agent loop itself against the project's tools
and is judged on the outcome, not turn by turn.

Items (`live_items`): one per held-out trajectory (curate's test split) that calls a tool and
whose gold answers state at least one fact a tool gave. An item is
`{"id", "layer": "live", "kind", "question", "followups": [later user messages], "system"?,
"tools": [OpenAI tools], "gold": [[{"name", "arguments"}...] per turn], "gold_steps",
"facts": {"numbers": [...], "terms": [...]}}`.

Facts (`gold_facts`) are what a right answer must say, read from the gold trajectory alone:
the numbers of its final answers that come from its observations (equal, or rounded or
rescaled, as `fcsft.text.grounding` reads numbers) and are not in anything the user said, less
whole numbers up to SMALL_INTEGERS (counts and ordinals); and the names and dates of its final
answers that appear in its observations and not in what the user said. A fact the user gave is
no evidence that the model used the tools; an answer with no fact from a tool cannot be checked
against the gold, so its trajectory is not an item.

Prediction (`predict_live`): the opening (system prompt, question) goes to `fcsft.agent.live`
with the tools the item offers, taken from the project's toolbox (the one generate runs, so
the model gets real results); at most `max_steps` replies a user turn. After a final answer the
next follow-up is appended and the loop goes on; a user turn that ends any other way ends the
item. A prediction is `{"id", "layer", "messages": [the whole conversation], "stops": [stop
reason per user turn], "replies", "model_error", "usage", "latency_s"}`.

The verdict (`judge`) is deterministic and needs no model:

    stopped      every user turn ended with a final answer (not at the step, token or repeat
                 limit, nor on a reply that could not be read)
    valid_calls  every call names a tool the item offers and its arguments fit that tool's
                 schema (no missing required parameter, wrong type or undeclared parameter)
    grounded     every number, date and name of the model's answers is in what the user said
                 or in a result its own calls got (validation's grounding rule)
    correct      every gold fact is in the model's answers: a number when one of the answers'
                 numbers is it, or it rounded or rescaled, or it is one of theirs rounded or
                 rescaled; a name or date when it appears, letter case aside
    success      all four: the task is done
    steps        replies the model took (`gold_steps`: assistant turns of the gold)

`reason` names the first check that failed, in that order, with what it found.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fcsft.agent import Limits, Settings, ToolLike, live, protocol_named
from fcsft.errors import UserError
from fcsft.evaluate.predict import Protocol, answered, item_messages, prediction_outcome
from fcsft.evaluate.testset import gold_of, held_out, ood_kind
from fcsft.formats import decode_arguments
from fcsft.formats.openai import tool_json
from fcsft.intervals import wilson
from fcsft.models.base import ChatLike
from fcsft.models.client import records_at_once, replies_name
from fcsft.records import FinalAnswer, Observation, Trajectory, turns
from fcsft.stage import Outcome, Stage
from fcsft.text.grounding import answer_names, number_grounded, ungrounded
from fcsft.text.terms import codes, numbers
from fcsft.tools.validation import argument_problems

CHECKS = ("stopped", "valid_calls", "grounded", "correct")
METRICS = ("success", *CHECKS)
SMALL_INTEGERS = 12
"""Whole numbers up to this are counts and ordinals: never facts, and grounded anywhere."""


def _is_count(number: str) -> bool:
    """A whole number up to SMALL_INTEGERS: a count or ordinal, not a fact."""
    try:
        value = float(number)
    except ValueError:
        return False
    return value.is_integer() and abs(value) <= SMALL_INTEGERS


def gold_facts(trajectory: Trajectory) -> dict[str, list[str]]:
    """The facts of the gold answers that came from a tool (see the module)."""
    answers = [step.text for step in trajectory.steps if isinstance(step, FinalAnswer)]
    observed = "\n".join(s.content for s in trajectory.steps if isinstance(s, Observation))
    said = "\n".join(trajectory.user_turns)
    from_tools, from_user = numbers(observed), numbers(said)
    found = {
        n
        for answer in answers
        for n in numbers(answer)
        if not _is_count(n)
        and number_grounded(n, from_tools, -1)
        and not number_grounded(n, from_user, -1)
    }
    lowered_observed, lowered_said = observed.lower(), said.lower()
    terms = {
        term.lower()
        for answer in answers
        for term in [*answer_names(answer), *(c for c in codes(answer) if any(map(str.isdigit, c)))]
        if term.lower() in lowered_observed and term.lower() not in lowered_said
    }
    return {"numbers": sorted(found), "terms": sorted(terms)}


def live_items(
    curated: Path, count: int, held_out_tools: list[str], seed: int = 0
) -> list[dict[str, Any]]:
    """Up to `count` live items from the curate stage's test split (a seeded draw)."""
    items = []
    for trajectory in held_out(curated):
        facts = gold_facts(trajectory)
        if not trajectory.calls or not (facts["numbers"] or facts["terms"]):
            continue
        item = {
            "id": trajectory.id,
            "layer": "live",
            "kind": ood_kind(trajectory, set(held_out_tools)) or "held_out_family",
            "question": trajectory.question,
            "followups": trajectory.user_turns[1:],
            "tools": [tool_json(t) for t in trajectory.tools],
            "gold": gold_of(trajectory),
            "gold_steps": len(turns(trajectory.steps)),
            "facts": facts,
        }
        if trajectory.system is not None:
            item["system"] = trajectory.system
        items.append(item)
    random.Random(seed).shuffle(items)
    return items[:count]


def offered_tools(item: dict[str, Any], toolbox: Mapping[str, ToolLike]) -> dict[str, ToolLike]:
    """The project's tools the item offers; a name the toolbox lacks is a UserError."""
    names = [tool["function"]["name"] for tool in item.get("tools") or []]
    missing = [name for name in names if name not in toolbox]
    if missing:
        raise UserError(
            f"live item {item['id']!r} offers {', '.join(missing)}, which the project's tools "
            "do not have; re-run generate with the tools: the evaluation runs"
        )
    return {name: toolbox[name] for name in names}


async def predict_live(
    model: ChatLike,
    model_name: str,
    item: dict[str, Any],
    toolbox: Mapping[str, ToolLike],
    protocol: Protocol = "native",
    max_tokens: int = 256,
    max_steps: int = 6,
) -> dict[str, Any]:
    """Let the model do the item's task against the real tools (see the module)."""
    tools = offered_tools(item, toolbox)
    settings = Settings(model_name, max_tokens)
    limits = Limits(max_steps=max_steps)
    messages = item_messages(item)
    stops: list[str] = []
    usage: dict[str, float] = {}
    replies, latency, model_error = 0, 0.0, None
    for number, said in enumerate([None, *item.get("followups", [])]):
        if number:
            messages = [*messages, {"role": "user", "content": said}]
        run = await live(model, protocol_named(protocol), settings, messages, tools, limits)
        messages = run.messages
        stops.append(run.stop)
        replies += len(run.replies)
        latency += run.latency_s
        for key, value in run.usage.model_dump().items():
            usage[key] = usage.get(key, 0) + value
        if run.stop == "model_error":
            model_error = run.error
        if run.stop != "final_answer":
            break
    return {
        "id": item["id"],
        "layer": "live",
        "messages": messages,
        "stops": stops,
        "replies": replies,
        "model_error": model_error,
        "usage": usage,
        "latency_s": round(latency, 3),
    }


def live_stage(
    model: ChatLike,
    model_name: str,
    toolbox: Mapping[str, ToolLike],
    protocol: Protocol = "native",
    max_tokens: int = 256,
    max_steps: int = 6,
) -> Stage:
    """The live predictions as a resumable stage (`live/` of an eval directory); the tools'
    descriptions are in its key, so a changed toolbox asks again."""

    async def process(item: dict[str, Any]) -> list[Outcome]:
        prediction = await predict_live(
            model, model_name, item, toolbox, protocol, max_tokens, max_steps
        )
        return [prediction_outcome(prediction)]

    tools = sorted((tool_json(tool.spec) for tool in toolbox.values()), key=str)
    return Stage(
        name="live",
        process=process,
        config={
            "model": replies_name(model, model_name),
            "protocol": protocol,
            "max_tokens": max_tokens,
            "max_steps": max_steps,
            "tools": tools,
        },
        parallel=records_at_once(model),
    )


def _said_and_done(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict], list[str], str]:
    """What the user said, the calls made, the model's answers, and the tools' results."""
    user = [m["content"] for m in messages if m.get("role") == "user"]
    calls = [
        call["function"]
        for m in messages
        if m.get("role") == "assistant"
        for call in m.get("tool_calls") or []
    ]
    answers = [
        m["content"]
        for m in messages
        if m.get("role") == "assistant" and not m.get("tool_calls") and m.get("content")
    ]
    results = "\n".join(str(m.get("content")) for m in messages if m.get("role") == "tool")
    return user, calls, answers, results


def _call_problems(call: dict[str, Any], schemas: dict[str, dict[str, Any]]) -> list[str]:
    name = call.get("name")
    if name not in schemas:
        return [f"{name!r} is not a tool on offer ({', '.join(sorted(schemas)) or 'none'})"]
    arguments = decode_arguments(call.get("arguments", {}), name)
    return [f"{name}: {message}" for _, message in argument_problems(schemas[name], arguments)]


def _has_number(fact: str, said: set[str]) -> bool:
    return any(
        number_grounded(fact, {n}, -1) or (number_grounded(n, {fact}, -1) and not _is_count(n))
        for n in said
    )


def judge(item: dict[str, Any], prediction: dict[str, Any]) -> dict[str, Any]:
    """The verdict on one live prediction (see the module)."""
    user, calls, answers, results = _said_and_done(prediction.get("messages") or [])
    stops = prediction.get("stops") or []
    schemas = {
        tool["function"]["name"]: tool["function"].get("parameters") or {}
        for tool in item.get("tools") or []
    }
    invalid = [problem for call in calls for problem in _call_problems(call, schemas)]
    text = "\n".join(answers)
    loose = ungrounded(text, "\n".join([*user, results]), SMALL_INTEGERS)
    said_numbers, lowered = numbers(text), text.lower()
    facts = item.get("facts") or {}
    missing = [n for n in facts.get("numbers", []) if not _has_number(n, said_numbers)]
    missing += [t for t in facts.get("terms", []) if t not in lowered]
    asked = 1 + len(item.get("followups") or [])
    checks = {
        "stopped": len(stops) == asked and all(s == "final_answer" for s in stops),
        "valid_calls": not invalid,
        "grounded": not loose,
        "correct": not missing,
    }
    why = {
        "stopped": f"stopped: {stops[-1] if stops else 'never asked'}",
        "valid_calls": "invalid calls: " + "; ".join(invalid),
        "grounded": "not from the tools or the user: " + ", ".join(loose),
        "correct": "gold facts missing from the answer: " + ", ".join(missing),
    }
    failed = [check for check in CHECKS if not checks[check]]
    return {
        "id": item["id"],
        "kind": item.get("kind"),
        "success": not failed,
        **checks,
        "steps": int(prediction.get("replies") or 0),
        "gold_steps": item.get("gold_steps"),
        "reason": why[failed[0]] if failed else None,
    }


def score_live(items_path: Path, predictions_path: Path) -> tuple[list[dict], list[str]]:
    """Per-item verdicts, and the ids left out because the model failed (not answered)."""
    pairs, failed = answered(items_path, predictions_path)
    return [judge(item, prediction) for item, prediction in pairs], failed


def mean_interval(values: list[float]) -> dict[str, Any]:
    """The mean with a 95% normal interval (mean +- 1.96 standard errors; none under 2)."""
    n = len(values)
    mean = sum(values) / n if n else 0.0
    if n < 2:
        return {"n": n, "mean": round(mean, 4), "ci95": None}
    spread = 1.959964 * math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)
    return {
        "n": n,
        "mean": round(mean, 4),
        "ci95": [round(mean - spread, 4), round(mean + spread, 4)],
    }


def summarise_live(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Each check's rate with its 95% Wilson interval, the steps taken against the gold's, and
    how often each check was the first to fail."""
    reasons: dict[str, int] = {}
    for row in rows:
        if row["reason"]:
            first = next(check for check in CHECKS if not row[check])
            reasons[first] = reasons.get(first, 0) + 1
    return {
        "n": len(rows),
        "rates": {m: wilson(sum(r[m] for r in rows), len(rows)).to_json() for m in METRICS},
        "steps": mean_interval([r["steps"] for r in rows]),
        "gold_steps": mean_interval([r["gold_steps"] for r in rows if r["gold_steps"] is not None]),
        "first_failure": reasons,
    }
