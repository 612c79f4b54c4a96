"""BFCL v4 as eval items, read from the installed bfcl-eval package (never copied into fcsft).

This module loads the single-turn categories (`SCORED`); the multi-turn ones (`MULTI_TURN`)
share its split and drawing (`select_entries`, `possible_answers`) and are made into items by
`fcsft.evaluate.multi_turn`, which runs them against BFCL's executable environments.

Each category is a file of one JSON object a line in the package's `data/`, with the possible
answers in `data/possible_answer/`. An item here is what fcsft.evaluate.score reads:
`{"id", "layer": category, "split", "kind", "messages", "tools", "bfcl_functions", "gold",
"possible"}`, where `possible` is BFCL's ground truth as one turn and `gold` one right answer
picked from it (the first acceptable value of each parameter); the irrelevance categories have
`gold: []`. `bfcl_functions` are the functions as BFCL shows them to models it prompts without
function calling (its own names and types, with its Python 3 note).

Tools are shown the way BFCL's own function-calling handlers show them to OpenAI-style models,
so scores are comparable with its leaderboard: Python types as JSON-schema types (dict ->
object, float -> number with format float, tuple -> array, any -> string), "." in function
names as "_" (OpenAI's name pattern has no dots; names in `possible` follow), and BFCL's
"Python 3 syntax" note on each description.

Dev and test: every category is split once, by `SPLIT_SEED`, into a dev part (the
`DEV_SHARE` of its items whose keyed hash of the id is smallest, rounded down) and a test part
(the rest). The split depends on nothing but the ids, so it is the same on every machine and for
every `--seed`; every choice (data recipe, steps, checkpoint, decoding) is made on dev, and the
test part is scored once, on the final model. Each item carries its part in `split`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import random
from collections.abc import Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from fcsft.errors import UserError
from fcsft.jsonl import read_jsonl

VERSION = "BFCL_v4"
AST = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
)
IRRELEVANCE = ("irrelevance", "live_irrelevance")
MULTI_TURN = (
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
)
"""Run live against BFCL's own environments and judged by its multi-turn checker
(fcsft.evaluate.multi_turn)."""
SCORED = AST + IRRELEVANCE
"""Single-turn categories, scored call by call and by BFCL's AST checker."""
CATEGORIES = SCORED + MULTI_TURN
"""What `fcsft eval --bfcl` takes."""
UNSCORED = {
    "simple_java": "its answers are Java source text, checked by BFCL's Java type converter",
    "simple_javascript": "its answers are JavaScript source text",
    "live_relevance": "its right answer is any call at all, which gold cannot say",
    "memory": "it is scored on the final answer",
    "web_search": "it is scored on the final answer",
}
QUESTIONS = CATEGORIES + tuple(UNSCORED)
"""Categories bfcl_references reads (for decontamination)."""

TYPES = {
    "string": "string",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "boolean": "boolean",
    "array": "array",
    "tuple": "array",
    "dict": "object",
    "object": "object",
    "any": "string",
}
PYTHON_NOTE = " Note that the provided function is in Python 3 syntax."
FLOAT_NOTE = " This is a float type value."
INSTALL = "pip install --no-deps bfcl-eval"

Split = Literal["dev", "test", "all"]
SPLITS: tuple[Split, ...] = ("dev", "test", "all")
SPLIT_SEED = "fcsft-bfcl-dev-test-1"
DEV_SHARE = 0.2
"""Share of each category in the dev part (at most 25%, as the evaluation protocol asks)."""


def data_dir() -> Path:
    """The installed bfcl-eval package's data folder."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"BFCL needs the bfcl-eval package; run: {INSTALL}")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def check_category(category: str, known: Iterable[str] = CATEGORIES) -> None:
    known = tuple(known)
    if category in known:
        return
    if category in UNSCORED:
        raise UserError(f"BFCL category {category!r} is not supported here: {UNSCORED[category]}")
    raise UserError(f"unknown BFCL category {category!r}; known: {', '.join(known)}")


def _entries(category: str, folder: Path) -> list[dict[str, Any]]:
    path = folder / f"{VERSION}_{category}.json"
    if not path.exists():
        raise UserError(f"{path}: not found; reinstall bfcl-eval ({INSTALL})")
    return list(read_jsonl(path))


def openai_schema(node: dict[str, Any]) -> dict[str, Any]:
    """A BFCL parameter description as JSON schema."""
    schema = copy.deepcopy({k: v for k, v in node.items() if k not in ("properties", "items")})
    declared = node.get("type")
    schema["type"] = TYPES.get(declared, "string")
    if declared == "float":
        schema["format"] = "float"
        schema["description"] = schema.get("description", "") + FLOAT_NOTE
    if isinstance(node.get("properties"), dict):
        schema["properties"] = {k: openai_schema(v) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        schema["items"] = openai_schema(node["items"])
    return schema


def tool_name(name: str) -> str:
    return name.replace(".", "_")


def openai_tool(function: dict[str, Any]) -> dict[str, Any]:
    parameters = openai_schema(function.get("parameters") or {"type": "dict", "properties": {}})
    parameters.setdefault("properties", {})
    return {
        "type": "function",
        "function": {
            "name": tool_name(function["name"]),
            "description": function.get("description", "") + PYTHON_NOTE,
            "parameters": parameters,
        },
    }


def _omissible(values: Any) -> bool:
    return isinstance(values, list) and any(isinstance(v, str) and v == "" for v in values)


def _first_acceptable(values: Any) -> tuple[bool, Any]:
    """(present, value): the first acceptable value, or absent when only "" (left out) is."""
    for value in values if isinstance(values, list) else [values]:
        if not (isinstance(value, str) and value == ""):
            return True, _pick(value)
    return False, None


def _pick(value: Any, known: Collection[str] | None = None) -> Any:
    """One acceptable value; keys the schema does not know are left out where they may be."""
    if isinstance(value, list):
        return [_pick(v) for v in value]
    if not isinstance(value, dict):
        return value
    picked = {}
    for key, values in value.items():  # an object written key by key
        if known is not None and key not in known and _omissible(values):
            continue
        present, chosen = _first_acceptable(values)
        if present:
            picked[key] = chosen
    return picked


def _item(
    entry: dict[str, Any], category: str, answer: list[dict[str, Any]] | None, part: str
) -> dict:
    item = {
        "id": entry["id"],
        "layer": category,
        "split": part,
        "kind": "irrelevance" if category in IRRELEVANCE else "ast",
        "messages": entry["question"][0],
        "tools": [openai_tool(f) for f in entry["function"]],
        "bfcl_functions": [
            f | {"description": f.get("description", "") + PYTHON_NOTE} for f in entry["function"]
        ],
        "gold": [],
    }
    if answer is not None:
        turn = [{tool_name(name): params for name, params in call.items()} for call in answer]
        item["possible"] = [turn]
        known = {
            t["function"]["name"]: t["function"]["parameters"]["properties"] for t in item["tools"]
        }
        item["gold"] = [
            [
                {"name": name, "arguments": _pick(params, known.get(name))}
                for call in turn
                for name, params in call.items()
            ]
        ]
    return item


def parts(ids: Iterable[str]) -> dict[str, str]:
    """Each id's part of the split, "dev" or "test" (see the module docstring)."""
    ids = list(ids)

    def key(ident: str) -> str:
        return hashlib.sha256(f"{SPLIT_SEED}:{ident}".encode()).hexdigest()

    dev = set(sorted(ids, key=key)[: int(DEV_SHARE * len(ids))])
    return {ident: "dev" if ident in dev else "test" for ident in ids}


def split_sizes(category: str, *, folder: Path | None = None) -> dict[str, int]:
    """How many items of the category each part holds."""
    check_category(category)
    assigned = parts(entry["id"] for entry in _entries(category, folder or data_dir()))
    return {part: sum(1 for p in assigned.values() if p == part) for part in ("dev", "test")}


def load_bfcl(
    category: str,
    limit: int | None = None,
    seed: int = 0,
    *,
    split: Split = "all",
    folder: Path | None = None,
) -> list[dict[str, Any]]:
    """A BFCL category's items of one part of the split (or all), all of them or `limit`
    drawn at random from that part (in file order)."""
    if category in MULTI_TURN:
        raise UserError(f"BFCL {category} items are loaded by fcsft.evaluate.multi_turn")
    folder = folder or data_dir()
    entries = select_entries(category, limit, seed, split, folder)
    if category in IRRELEVANCE:
        return [_item(entry, category, None, part) for entry, part in entries]
    answers = possible_answers(category, [entry for entry, _ in entries], folder)
    return [_item(entry, category, answers[entry["id"]], part) for entry, part in entries]


def select_entries(
    category: str, limit: int | None, seed: int, split: Split, folder: Path
) -> list[tuple[dict[str, Any], str]]:
    """(entry, part) of a category's entries in one part of the split (or all), all of them or
    `limit` drawn at random from that part (in file order)."""
    check_category(category)
    if split not in SPLITS:
        raise UserError(f"BFCL split {split!r}: expected one of {', '.join(SPLITS)}")
    entries = _entries(category, folder)
    assigned = parts(entry["id"] for entry in entries)
    if split != "all":
        entries = [entry for entry in entries if assigned[entry["id"]] == split]
    if limit is not None and limit < len(entries):
        chosen = sorted(random.Random(seed).sample(range(len(entries)), limit))
        entries = [entries[i] for i in chosen]
    return [(entry, assigned[entry["id"]]) for entry in entries]


def possible_answers(category: str, entries: list[dict[str, Any]], folder: Path) -> dict[str, Any]:
    """BFCL's ground truth of each of these entries, by id."""
    answers = {
        a["id"]: a["ground_truth"]
        for a in read_jsonl(folder / "possible_answer" / f"{VERSION}_{category}.json")
    }
    missing = [entry["id"] for entry in entries if entry["id"] not in answers]
    if missing:
        raise UserError(f"BFCL {category}: no possible answer for {', '.join(missing[:5])}")
    return answers


def bfcl_references(
    categories: Iterable[str], *, folder: Path | None = None
) -> Iterator[dict[str, Any]]:
    """What decontamination compares with, item by item: `{"id", "questions": every user
    message, "functions": [(name, description)] as BFCL wrote them}`."""
    categories = list(categories)
    for category in categories:
        check_category(category, QUESTIONS)
    folder = folder or data_dir()
    for category in categories:
        for entry in _entries(category, folder):
            questions = [
                message["content"]
                for turn in entry.get("question") or []
                for message in turn
                if message.get("role") == "user" and isinstance(message.get("content"), str)
            ]
            functions = [
                (f.get("name", ""), f.get("description", ""))
                for f in entry.get("function") or []
                if isinstance(f, dict)
            ]
            yield {"id": entry["id"], "questions": questions, "functions": functions}
