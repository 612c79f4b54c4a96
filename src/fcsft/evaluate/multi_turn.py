"""BFCL's multi-turn categories, run live against BFCL's own environments and judged twice.

An item (`kind: "multi_turn"`) is one BFCL entry: its user turns (`questions`), the API
classes it involves and their `initial_config`, the functions shown (BFCL's docs of those
classes, less the ones `missed_function` holds back until a later turn) and BFCL's ground
truth, one list of call strings per user turn. `gold` is that ground truth read into calls,
per user turn, so the per-turn metrics of `fcsft.evaluate.score` apply as to any item.

Prediction (`predict_multi_turn`): an `Environment` is built from the item's configuration,
and for each user turn the model runs the agent loop live (`fcsft.agent.live`) on the
conversation so far, its calls executed on the environment and the results fed back, until
it answers without calling (at most `MAX_STEPS` replies a turn, as BFCL allows). A turn
where `missed_function` adds functions has no user message; the functions are added and the
model is told so in BFCL's own words. A call to a method not shown runs all the same, as
BFCL's executor runs it. A reply that cannot be read ends its turn, kept as text, and the
next turn goes on, as BFCL goes on past a reply it cannot decode (`parse_error` holds the
first); a failed request ends the item. The prediction keeps every reply's calls per turn
(`steps`), the calls per turn flattened (`turns`, for the per-turn metrics) and fcsft's
verdict (`state_check`).

fcsft's verdict is taken on the state the live run left: after each user turn whose ground
truth calls something, the live environment's state must equal that of a second environment
that ran the ground truth of every turn so far, every result the ground truth of this turn
gave must be among the results the model got so far (as a multiset), and the model must have
called something in that turn. BFCL's verdict (`official_verdict`) re-executes the model's
calls in BFCL's own executor and applies its `multi_turn_checker`, as its eval runner does
(a prediction with fewer turns than the ground truth is force-terminated and fails).
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path
from typing import Any

from fcsft.agent import Limits, Reply, Settings, live, protocol_named
from fcsft.benchmarks import bfcl
from fcsft.errors import UserError
from fcsft.evaluate.bfcl_prompt import parse_calls
from fcsft.intervals import wilson
from fcsft.models.base import ChatLike
from fcsft.tools.bfcl_env import Environment, function_docs, specs

MAX_STEPS = 20
"""Replies per user turn before BFCL force-quits the model (its MAXIMUM_STEP_LIMIT)."""
ADDED_FUNCTIONS = "I have updated some more functions you can choose from. What about now?"
"""What BFCL tells the model at a turn that adds held-back functions."""
MODEL = "fcsft_multi_turn"
_checks = itertools.count()


def _read_calls(strings: list[str], tools: list[dict[str, Any]], where: str) -> list[dict]:
    calls, error = parse_calls(f"[{', '.join(strings)}]", tools) if strings else ([], None)
    if error or len(calls) != len(strings):
        raise UserError(f"{where}: BFCL ground truth {strings!r} cannot be read ({error})")
    return calls


def _item(entry: dict, truth: list[list[str]], category: str, part: str) -> dict[str, Any]:
    docs = function_docs(entry["involved_classes"])
    held = {int(turn): names for turn, names in (entry.get("missed_function") or {}).items()}
    held_names = {name for names in held.values() for name in names}
    every_tool = [bfcl.openai_tool(doc) for doc in docs]
    return {
        "id": entry["id"],
        "layer": category,
        "split": part,
        "kind": "multi_turn",
        "questions": entry["question"],
        "involved_classes": entry["involved_classes"],
        "initial_config": entry["initial_config"],
        "functions": [doc for doc in docs if doc["name"] not in held_names],
        "held_functions": {str(turn): names for turn, names in held.items()},
        "bfcl_docs": docs,
        "tools": [t for t in every_tool if t["function"]["name"] not in held_names],
        "ground_truth": truth,
        "gold": [
            _read_calls(turn, every_tool, f"{entry['id']} turn {k}") for k, turn in enumerate(truth)
        ],
    }


def load_multi_turn(
    category: str,
    limit: int | None = None,
    seed: int = 0,
    *,
    split: bfcl.Split = "all",
    folder: Path | None = None,
) -> list[dict[str, Any]]:
    """A BFCL multi-turn category's items of one part of the split, as `bfcl.load_bfcl` draws
    them."""
    folder = folder or bfcl.data_dir()
    entries = bfcl.select_entries(category, limit, seed, split, folder)
    truth = bfcl.possible_answers(category, [entry for entry, _ in entries], folder)
    return [_item(entry, truth[entry["id"]], category, part) for entry, part in entries]


def environment(item: dict[str, Any]) -> Environment:
    return Environment(
        item["involved_classes"],
        item["initial_config"],
        long_context="long_context" in item["layer"],
        specs=specs(item["bfcl_docs"]),
    )


def _judge_turn(
    k: int, env: Environment, truth_env: Environment, gold: list[dict], results: list[str]
) -> str | None:
    """Run turn k's ground truth on `truth_env`; why the live turn fails (None: it passes)."""
    expected = [truth_env.call(c["name"], c["arguments"]).content for c in gold]
    ours, theirs = env.state(), truth_env.state()
    if ours != theirs:
        changed = [
            f"{cls}.{attr}"
            for cls, attrs in theirs.items()
            for attr, value in attrs.items()
            if ours[cls].get(attr) != value
        ]
        return f"turn {k}: the state differs from the ground truth's in {', '.join(changed)}"
    missing = Counter(expected) - Counter(results)
    if missing:
        return f"turn {k}: results of the ground truth missing: {list(missing)[:3]}"
    return None


async def predict_multi_turn(
    model: ChatLike, model_name: str, item: dict[str, Any], protocol: str, max_tokens: int
) -> dict[str, Any]:
    """Run the item live turn by turn and judge the state it leaves (see the module)."""
    env, truth_env = environment(item), environment(item)
    shown = [tool["function"]["name"] for tool in item["tools"]]
    docs = list(item["functions"])
    held = item.get("held_functions") or {}
    settings = Settings(model_name, max_tokens)
    # BFCL bounds a turn by its replies alone: no token budget, repeats allowed.
    limits = Limits(max_steps=MAX_STEPS, max_tokens=10**9, max_repeats=MAX_STEPS)
    messages: list[dict[str, Any]] = []
    steps: list[list[list[dict[str, Any]]]] = []
    results: list[str] = []
    raw: list[str] = []
    verdict: dict[str, Any] = {"valid": True, "reason": None}
    usage, latency, stop = Counter(), 0.0, ""
    parse_error: str | None = None
    model_error: str | None = None
    for k, (question, truth) in enumerate(
        zip(item["questions"], item["ground_truth"], strict=True)
    ):
        if str(k) in held:
            shown += held[str(k)]
            docs += [d for d in item["bfcl_docs"] if d["name"] in held[str(k)]]
            question = [{"role": "user", "content": ADDED_FUNCTIONS}]
        protocol_obj = protocol_named(protocol, docs)
        run = await live(
            model, protocol_obj, settings, messages + question, env.methods, limits, shown
        )
        new = run.messages[len(messages) + len(question) :]
        messages = run.messages
        usage.update(run.usage.model_dump())
        latency += run.latency_s
        raw += [reply.raw for reply in run.replies]
        turn_steps = [calls for calls in map(Reply.calls, run.replies) if calls]
        steps.append(turn_steps)
        results += [m["content"] for m in new if m.get("role") == "tool"]
        stop = run.stop
        if run.stop == "model_error":
            model_error = run.error
            break
        if run.stop == "parse_error":
            parse_error = parse_error or run.error
            messages.append({"role": "assistant", "content": run.replies[-1].raw})
        if verdict["valid"] and truth:
            why = (
                f"turn {k}: no call where the ground truth calls"
                if not turn_steps
                else _judge_turn(k, env, truth_env, item["gold"][k], results)
            )
            if why:
                verdict = {"valid": False, "reason": why}
    if len(steps) < len(item["ground_truth"]) and verdict["valid"]:
        verdict = {"valid": False, "reason": f"stopped after turn {len(steps) - 1}: {stop}"}
    return {
        "id": item["id"],
        "layer": item["layer"],
        "kind": "multi_turn",
        "turns": [[c for step in turn for c in step] for turn in steps],
        "steps": steps,
        "state_check": verdict,
        "parse_error": parse_error,
        "model_error": model_error,
        "raw": raw,
        "usage": dict(usage),
        "latency_s": round(latency, 3),
    }


def call_string(call: dict[str, Any]) -> str:
    """A call as BFCL's executor reads it: `name(key=repr(value), ...)`."""
    arguments = ", ".join(f"{k}={v!r}" for k, v in (call.get("arguments") or {}).items())
    return f"{call.get('name')}({arguments})"


def official_verdict(item: dict[str, Any], steps: list[list[list[dict]]]) -> tuple[bool, str]:
    """BFCL's multi_turn_checker on these calls (per user turn, per reply), as its runner
    applies it; its error type and message when it rejects them."""
    try:
        from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
        from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
    except ImportError as exc:
        raise UserError(f"BFCL's multi-turn checker needs bfcl-eval: {bfcl.INSTALL}") from exc
    truth = item["ground_truth"]
    if len(steps) != len(truth):
        return False, f"multi_turn:force_terminated: {len(steps)} turns of {len(truth)}"
    decoded = [[[call_string(c) for c in step] for step in turn if step] for turn in steps]
    entry = {
        "id": item["id"],
        "initial_config": item["initial_config"],
        "involved_classes": item["involved_classes"],
    }
    # BFCL keeps its instances in its executor's globals, named by model and item: a name
    # of its own per check keeps one check's state out of the next, and is removed after.
    name = f"{MODEL}_{next(_checks)}"
    try:
        result = multi_turn_checker(decoded, truth, entry, item["layer"], name)
    finally:
        prefix = re.sub(r"[-./:]", "_", name)
        for key in [k for k in vars(multi_turn_utils) if k.startswith(prefix)]:
            del vars(multi_turn_utils)[key]
    if result["valid"]:
        return True, ""
    return False, f"{result.get('error_type')}: {result.get('error_message')}"


def multi_turn_section(
    items: dict[str, dict[str, Any]], predictions: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Task success per category (fcsft's and BFCL's verdicts, 95% Wilson intervals), both
    verdicts per item and every disagreement (None: no multi-turn item)."""
    verdicts: dict[str, dict[str, Any]] = {}
    for prediction in predictions:
        item = items.get(prediction["id"])
        if item is None or item.get("kind") != "multi_turn" or prediction.get("model_error"):
            continue
        theirs, error = official_verdict(item, prediction.get("steps") or [])
        check = prediction.get("state_check") or {"valid": False, "reason": "not judged"}
        verdicts[item["id"]] = {
            "layer": item["layer"],
            "fcsft": bool(check["valid"]),
            "bfcl": theirs,
            **({"fcsft_reason": check["reason"]} if check.get("reason") else {}),
            **({"bfcl_error": error[:400]} if error else {}),
        }
    if not verdicts:
        return None
    success: dict[str, dict[str, Any]] = {}
    for layer in sorted({v["layer"] for v in verdicts.values()}):
        rows = [v for v in verdicts.values() if v["layer"] == layer]
        success[layer] = {
            judge: wilson(sum(v[judge] for v in rows), len(rows)).to_json()
            for judge in ("fcsft", "bfcl")
        }
    agree = sum(v["fcsft"] == v["bfcl"] for v in verdicts.values())
    return {
        "checker": "bfcl_eval multi_turn_checker (state and response checks)",
        "n": len(verdicts),
        "success": success,
        "agree": agree,
        "agreement": round(agree / len(verdicts), 5),
        "verdicts": verdicts,
        "disagreements": [
            {"id": ident, **v} for ident, v in verdicts.items() if v["fcsft"] != v["bfcl"]
        ],
    }
