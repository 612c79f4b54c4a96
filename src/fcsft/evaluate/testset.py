"""The three test layers, built from a run's held-out split.

    standard       held-out families: the same kind of task, never trained on
    ood            out of distribution: combinations, long chains, failing tools, held-out tools
    adversarial    should-not-call: arithmetic, chit-chat, questions the tools cannot answer,
                   requests that lack a required value (ask, do not guess)

An item is one JSON object a line:
`{"id", "layer", "question", "system"?, "tools": [OpenAI tools], "gold": [[{"name",
"arguments"}...] per turn], "kind", "conversation"?}`; `gold: []` means the right move is to call
nothing. `conversation` (OpenAI messages of the gold trajectory, tool results included) lets
evaluation replay a multi-step item turn by turn (see `fcsft.evaluate.predict`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fcsft.errors import UserError
from fcsft.formats import FormatError, get_format
from fcsft.formats.openai import conversation, tool_json
from fcsft.jsonl import read_numbered
from fcsft.records import Tool, Trajectory, turns

OPENAI = get_format("openai")

CHIT_CHAT = [
    "2 + 2 = ?",
    "What is 7 times 8?",
    "Hi! How are you today?",
    "Thanks, that was helpful.",
    "Can you tell me a short joke?",
    "What does the word 'ledger' mean?",
    "Translate 'good morning' into French.",
    "Who wrote Romeo and Juliet?",
    "What is the capital of Italy?",
    "Write a haiku about autumn.",
    "What's 15% of 200?",
    "Is a tomato a fruit or a vegetable?",
]
UNANSWERABLE = [
    "What will the stock market do next year?",
    "What am I thinking about right now?",
    "What is the meaning of life?",
    "Which lottery numbers will win on Saturday?",
]


def gold_of(trajectory: Trajectory) -> list[list[dict[str, Any]]]:
    return [
        [{"name": c.name, "arguments": c.arguments} for c in turn.calls]
        for turn in turns(trajectory.steps)
        if turn.calls
    ]


def _item(trajectory: Trajectory, layer: str, kind: str) -> dict[str, Any]:
    item = {
        "id": trajectory.id,
        "layer": layer,
        "kind": kind,
        "question": trajectory.question,
        "tools": [tool_json(t) for t in trajectory.tools],
        "gold": gold_of(trajectory),
    }
    if len(item["gold"]) > 1:
        item["conversation"] = conversation(trajectory)
    if trajectory.system is not None:
        item["system"] = trajectory.system
    return item


def ood_kind(trajectory: Trajectory, held_out: set[str]) -> str | None:
    """Why a held-out trajectory is out of distribution, or None when it is standard."""
    if {c.name for c in trajectory.calls} & held_out:
        return "unseen_tool"
    if trajectory.meta.how == "combine":
        return "combination"
    if any(s.type == "observation" and s.failed for s in trajectory.steps):
        return "failing_tool"
    if len(trajectory.calls) >= 3:
        return "long_chain"
    return None


def read_items(path: Path) -> list[dict[str, Any]]:
    """The items of an items file; one that is not an item is a UserError naming its line."""
    items = []
    for number, item in read_numbered(path):
        if not isinstance(item.get("id"), str) or not ("question" in item or "messages" in item):
            raise UserError(
                f"{path}:{number}: an eval item needs a string id and a question (or messages)"
            )
        items.append(item)
    return items


def missing_value_items(
    toolboxes: list[list[Tool]], rng: random.Random, count: int
) -> list[dict[str, Any]]:
    """Requests that name a tool's purpose but not its required value: ask, do not guess. The
    item offers the toolbox the tool came with."""
    items = []
    candidates = [(t, box) for box in toolboxes for t in box if t.required]
    for number in range(count if candidates else 0):
        tool, tools = candidates[number % len(candidates)]
        param = rng.choice(tool.required)
        question = f"Please use {tool.name} for me, I have not decided the {param} yet."
        items.append(
            {
                "id": f"adv-missing-{number}",
                "layer": "adversarial",
                "kind": "missing_value",
                "question": question,
                "tools": [tool_json(t) for t in tools],
                "gold": [],
            }
        )
    return items


def held_out(curated: Path) -> list[Trajectory]:
    """The trajectories of the curate stage's test split, in file order."""
    test = []
    for number, obj in read_numbered(curated):
        meta = obj.get("meta")
        if not isinstance(meta, dict):
            raise UserError(
                f"{curated}:{number}: not a curated trajectory (no 'meta'); "
                "pass a run's curate/out.jsonl"
            )
        if meta.get("split") != "test":
            continue
        try:
            test.append(OPENAI.parse(obj))
        except FormatError as exc:
            raise UserError(f"{curated}:{number}: {exc}") from None
    return test


def build_testset(
    curated: Path,
    standard: int = 100,
    ood: int = 50,
    adversarial: int = 30,
    held_out_tools: Iterable[str] = (),
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Items for the three layers from the curate stage's test split."""
    rng = random.Random(seed)
    held = set(held_out_tools)
    test = held_out(curated)
    layers: dict[str, list[dict[str, Any]]] = {"standard": [], "ood": [], "adversarial": []}
    toolboxes: dict[tuple[str, ...], list[Tool]] = {}
    for trajectory in test:
        if trajectory.tools:
            toolboxes[tuple(t.name for t in trajectory.tools)] = trajectory.tools
        if trajectory.meta.no_tool:
            layers["adversarial"].append(_item(trajectory, "adversarial", "no_tool"))
            continue
        kind = ood_kind(trajectory, held)
        layer = "ood" if kind else "standard"
        layers[layer].append(_item(trajectory, layer, kind or "held_out_family"))
    # Generated items offer the toolboxes the held-out trajectories came with, in turn: a
    # project whose tasks each bring their own functions (BFCL's) has far too many to offer
    # all at once, and one with a single toolbox offers it whole.
    boxes = list(toolboxes.values())
    generated = [
        {
            "id": f"adv-{short}-{k}",
            "layer": "adversarial",
            "kind": kind,
            "question": q,
            "tools": [tool_json(t) for t in boxes[k % len(boxes)]] if boxes else [],
            "gold": [],
        }
        for short, kind, questions in (
            ("chat", "chit_chat", CHIT_CHAT),
            ("unanswerable", "unanswerable", UNANSWERABLE),
        )
        for k, q in enumerate(questions)
    ]
    generated += missing_value_items(boxes, rng, 6)
    layers["adversarial"] += generated
    limits = {"standard": standard, "ood": ood, "adversarial": adversarial}
    items = []
    for layer, found in layers.items():
        rng.shuffle(found)
        items += found[: limits[layer]]
    return items
