"""The BFCL adapter on the installed bfcl-eval data: every real item's tools, messages and
possible answers, and its scores checked against BFCL's own AST checker, answer by answer.

The raw files are read here with `json` alone, so what the adapter makes is compared with what
BFCL wrote, not with the adapter's own reading of it.
"""

import copy
import functools
import json
import re
from collections import Counter

import pytest
from pydantic import ValidationError

from fcsft.benchmarks import bfcl
from fcsft.benchmarks.bfcl import bfcl_references, load_bfcl
from fcsft.curate.stage import CurateConfig, curate
from fcsft.errors import UserError
from fcsft.evaluate.official import bfcl_checker
from fcsft.evaluate.score import score_item
from fcsft.formats import get_format
from fcsft.records import FinalAnswer, Meta, Observation, Tool, ToolCall, Trajectory

# BFCL's types as its function-calling handlers show them to OpenAI-style models
SHOWN_AS = {"dict": "object", "float": "number", "tuple": "array", "any": "string"}
JSON_SCHEMA_TYPES = {"string", "integer", "number", "boolean", "array", "object", "null"}
OPENAI_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


@functools.cache
def raw(category):
    """BFCL's entries of a category, by id, in file order."""
    path = bfcl.data_dir() / f"{bfcl.VERSION}_{category}.json"
    with path.open(encoding="utf-8") as lines:
        return {e["id"]: e for e in map(json.loads, lines)}


@functools.cache
def ground_truth(category):
    path = bfcl.data_dir() / "possible_answer" / f"{bfcl.VERSION}_{category}.json"
    with path.open(encoding="utf-8") as lines:
        return {a["id"]: a["ground_truth"] for a in map(json.loads, lines)}


@functools.cache
def items(category):
    return load_bfcl(category)


def predicted(calls):
    return {"id": "x", "turns": [calls] if calls else [], "parse_error": None, "raw": ""}


def ours(item, calls):
    return score_item(item, predicted(calls))["full_call"]


def theirs(item, calls):
    """BFCL's own verdict: its checker on its functions and possible answer, our calls."""
    output = [{c["name"]: c["arguments"]} for c in calls]
    functions = raw(item["layer"])[item["id"]]["function"]
    possible = ground_truth(item["layer"])[item["id"]]
    return bfcl_checker()(functions, output, possible, item["layer"])["valid"]


def shown_like(converted, node, path):
    """Problems of one converted parameter schema against BFCL's node (empty when right)."""
    declared = node.get("type")
    wanted = SHOWN_AS.get(declared, declared)
    problems = []
    if converted.get("type") != wanted or wanted not in JSON_SCHEMA_TYPES:
        problems.append(f"{path}: {declared} shown as {converted.get('type')}")
    note = bfcl.FLOAT_NOTE if declared == "float" else ""
    if converted.get("description", "") != node.get("description", "") + note:
        problems.append(f"{path}: description")
    if declared == "float" and converted.get("format") != "float":
        problems.append(f"{path}: float without its format")
    for key in ("default", "enum", "required"):
        if converted.get(key) != node.get(key):
            problems.append(f"{path}: {key}")
    children = node.get("properties") or {}
    if set(converted.get("properties") or {}) != set(children):
        problems.append(f"{path}: properties")
    for name, child in children.items():
        made = (converted.get("properties") or {}).get(name, {})
        problems += shown_like(made, child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        problems += shown_like(converted.get("items", {}), node["items"], f"{path}[]")
    return problems


def test_every_tool_is_shown_the_way_bfcl_shows_it_to_openai_models():
    problems, shown = [], Counter()
    for category in bfcl.SCORED:
        for item in items(category):
            functions = raw(category)[item["id"]]["function"]
            assert len(item["tools"]) == len(functions)
            for tool, function in zip(item["tools"], functions, strict=True):
                made = tool["function"]
                assert tool["type"] == "function" and OPENAI_NAME.match(made["name"])
                assert made["name"] == function["name"].replace(".", "_")
                assert made["description"] == function["description"] + bfcl.PYTHON_NOTE
                parameters = function.get("parameters") or {"type": "dict", "properties": {}}
                problems += shown_like(made["parameters"], parameters, made["name"])
                shown.update(re.findall(r'"type": "(\w+)"', json.dumps(parameters)))
            # the prompt without function calling shows BFCL's functions as BFCL wrote them
            assert item["bfcl_functions"] == [
                f | {"description": f["description"] + bfcl.PYTHON_NOTE} for f in functions
            ]
    assert problems == []
    assert {"dict", "float", "tuple", "any", "array", "integer", "boolean"} <= set(shown)


def test_items_carry_bfcls_messages_and_possible_answers_and_a_gold_from_them():
    for category in bfcl.AST:
        found = items(category)
        assert [i["id"] for i in found] == list(raw(category))  # every item, in file order
        for item in found:
            entry = raw(category)[item["id"]]
            assert (item["layer"], item["kind"]) == (category, "ast")
            assert item["messages"] == entry["question"][0]
            possible = [
                {name.replace(".", "_"): params for name, params in call.items()}
                for call in ground_truth(category)[item["id"]]
            ]
            assert item["possible"] == [possible]
            (gold,) = item["gold"]
            assert [c["name"] for c in gold] == [name for call in possible for name in call]
            schemas = {t["function"]["name"]: t["function"]["parameters"] for t in item["tools"]}
            for call, answer in zip(gold, possible, strict=True):
                known = schemas[call["name"]]["properties"]
                for param, values in answer[call["name"]].items():
                    given = [v for v in values if v != ""]
                    if not given or (param not in known and "" in values):
                        assert param not in call["arguments"]  # may be, or must be, left out
                    elif not isinstance(given[0], dict | list):
                        assert call["arguments"][param] == given[0], (item["id"], param)


def test_every_gold_answer_is_scored_as_bfcls_own_checker_scores_it():
    for category in bfcl.AST:
        verdicts = [(ours(i, i["gold"][0]), theirs(i, i["gold"][0])) for i in items(category)]
        assert [
            i["id"] for i, (a, b) in zip(items(category), verdicts, strict=True) if a != b
        ] == []
        # a few possible answers BFCL's checker cannot accept either (a required parameter
        # whose only answer is "left out", a parameter the function does not have)
        assert sum(b for _, b in verdicts) >= 0.98 * len(verdicts), category


def perturbations(item):
    """(what, calls, right): answers made from the gold, harmless changes and real errors."""
    (gold,) = item["gold"]
    first = gold[0]
    (answer,) = item["possible"][0][0].values()  # BFCL's answer for the first call
    schema = next(
        t["function"]["parameters"] for t in item["tools"] if t["function"]["name"] == first["name"]
    )
    properties, required = schema.get("properties", {}), schema.get("required", [])
    given = first["arguments"]
    # plain values BFCL's answer does not let be left out
    scalars = [
        p
        for p, v in given.items()
        if not isinstance(v, dict | list | bool) and "" not in answer.get(p, [""])
    ]

    def variant(name=first["name"], drop=(), values=None):
        calls = copy.deepcopy(gold)
        kept = {p: v for p, v in calls[0]["arguments"].items() if p not in drop}
        calls[0] = {"name": name, "arguments": kept | (values or {})}
        return calls

    made = [
        ("renamed", variant(name=first["name"] + "_v2"), False),
        ("unknown parameter", variant(values={"zz_unknown": 1}), False),
    ]
    if len(gold) > 1:
        made.append(("a call left out", gold[:-1], False))
    if droppable := [p for p in scalars if p in required]:
        made.append(("required left out", variant(drop=droppable[:1]), False))
    if needed := [p for p in scalars if p not in required]:  # optional, but the answer has it
        made.append(("needed optional left out", variant(drop=needed[:1]), False))
    if scalars:
        value = given[scalars[0]]
        wrong = "qqq not an answer" if isinstance(value, str) else value + 1000003
        made.append(("wrong value", variant(values={scalars[0]: wrong}), False))
    if omissible := [p for p in given if "" in answer.get(p, []) and p not in required]:
        made.append(("optional left out", variant(drop=omissible), True))
    texts = {
        p: given[p].upper()
        for p in scalars
        if isinstance(given[p], str)
        and given[p].isascii()
        and properties.get(p, {}).get("type") == "string"
    }
    if texts:
        made.append(("upper case", variant(values=texts), True))
    whole = {
        p: int(given[p])
        for p in scalars
        if isinstance(given[p], float)
        and given[p].is_integer()
        and properties.get(p, {}).get("format") == "float"
    }
    if whole:
        made.append(("int for a float", variant(values=whole), True))
    return made


def test_perturbed_answers_are_scored_as_bfcls_own_checker_scores_them():
    wrong, tried = [], Counter()
    for category in bfcl.AST:
        for item in items(category):
            if not theirs(item, item["gold"][0]):
                continue  # a possible answer nothing can meet (see the test above)
            for what, calls, right in perturbations(item):
                tried[what] += 1
                verdicts = (ours(item, calls), theirs(item, calls))
                if verdicts != (right, right):
                    wrong.append((item["id"], what, verdicts))
    assert wrong == []
    assert min(tried.values()) >= 20 and len(tried) == 9, tried


def test_parallel_calls_may_come_in_any_order():
    reordered = 0
    for category in ("parallel", "parallel_multiple", "live_parallel"):
        for item in items(category):
            (gold,) = item["gold"]
            if len(gold) > 1 and theirs(item, gold):
                reordered += 1
                assert ours(item, gold[::-1]), item["id"]
    assert reordered >= 100


def test_irrelevance_items_want_no_call():
    for category in bfcl.IRRELEVANCE:
        found = items(category)
        assert [i["id"] for i in found] == list(raw(category))
        for item in found:
            assert item["gold"] == [] and "possible" not in item
            assert item["kind"] == "irrelevance"
            assert item["messages"] == raw(category)[item["id"]]["question"][0]
            assert score_item(item, predicted([]))["no_call"] is True
            offered = [t["function"]["name"] for t in item["tools"]] or ["anything"]
            call = [{"name": offered[0], "arguments": {}}]
            assert score_item(item, predicted(call))["no_call"] is False


def test_a_limit_draws_the_same_items_in_file_order():
    order = list(raw("simple_python"))
    drawn = [item["id"] for item in load_bfcl("simple_python", limit=5, seed=3)]
    assert drawn == [item["id"] for item in load_bfcl("simple_python", limit=5, seed=3)]
    assert len(drawn) == 5 and drawn == sorted(drawn, key=order.index)
    assert drawn != [item["id"] for item in load_bfcl("simple_python", limit=5, seed=4)]
    assert len(load_bfcl("live_parallel", limit=1000)) == len(raw("live_parallel"))


def test_errors_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(UserError, match="unknown BFCL category 'simple'; known: simple_python"):
        load_bfcl("simple")
    with pytest.raises(
        UserError, match="'simple_java' is not supported here: its answers are Java"
    ):
        load_bfcl("simple_java")
    # a damaged install: every file of the real one is there, so an empty folder stands in
    with pytest.raises(UserError, match=r"BFCL_v4_multiple\.json: not found"):
        load_bfcl("multiple", folder=tmp_path)
    monkeypatch.setattr(bfcl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"run: pip install --no-deps bfcl-eval$"):
        load_bfcl("simple_python")


def user_texts(entry):
    return [m["content"] for turn in entry["question"] for m in turn if m["role"] == "user"]


def test_references_for_decontamination_are_the_user_messages_and_functions():
    categories = ["irrelevance", "live_simple", "multi_turn_base"]
    refs = list(bfcl_references(categories))
    entries = [e for c in categories for e in raw(c).values()]
    assert [ref["id"] for ref in refs] == [e["id"] for e in entries]
    for ref, entry in zip(refs, entries, strict=True):
        assert ref["questions"] == user_texts(entry)
        functions = entry.get("function", [])  # multi-turn items name classes instead
        assert ref["functions"] == [(f["name"], f["description"]) for f in functions]
    systems = [
        m["content"]
        for e in entries
        for turn in e["question"]
        for m in turn
        if m["role"] == "system"
    ]
    texts = {q for ref in refs for q in ref["questions"]}
    assert systems and not texts & set(systems)
    assert max(len(ref["questions"]) for ref in refs) > 1  # every turn of a multi-turn item


def trajectory(ident, question):
    return Trajectory(
        id=ident,
        question=question,
        tools=[Tool(name="search")],
        steps=[
            ToolCall(name="search", arguments={"q": ident}, id="c0"),
            Observation(content="r", call_id="c0"),
            FinalAnswer(text="done"),
        ],
        meta=Meta(task_id=ident, family=ident),
    )


def test_curate_drops_what_overlaps_bfcl_and_counts_hits_per_category():
    target, entry = next(
        (i, e) for i, e in raw("simple_python").items() if len(user_texts(e)[0].split()) >= 12
    )
    question = user_texts(entry)[0]
    leaked = "So, " + question[0].lower() + question[1:]
    openai = get_format("openai")
    records = [
        openai.render(trajectory("leak", leaked)),
        openai.render(trajectory("clean", "What did the board decide about the dividend?")),
    ]
    config = CurateConfig(
        test_share=0.0, general_ratio=0.0, decontaminate_bfcl=["simple_python", "irrelevance"]
    )
    pairs, report = curate(records, config)
    verdicts = {ident: outcomes[0].verdicts for ident, outcomes in pairs}
    assert verdicts["clean"] == []
    (reason,) = verdicts["leak"]
    assert reason.rule == "curate.contaminated"
    assert reason.reason.endswith(f"with bfcl:simple_python item {target}")
    found = report["decontamination"]
    assert found["hits"] == {"bfcl:simple_python": 1, "bfcl:irrelevance": 0}
    assert found["sets"] == {
        "bfcl:simple_python": len(raw("simple_python")),
        "bfcl:irrelevance": len(raw("irrelevance")),
    }
    (match,) = found["matches"]
    assert (match["id"], match["question"], match["set"]) == ("leak", leaked, "bfcl:simple_python")
    assert (match["match_id"], match["match_text"]) == (target, question)


def test_curate_config_checks_bfcl_categories_before_any_work(monkeypatch):
    with pytest.raises(ValidationError, match="unknown BFCL categories \\['simple'\\]"):
        CurateConfig(decontaminate_bfcl=["simple"])
    assert CurateConfig(decontaminate_bfcl=["multi_turn_base"]).decontaminate_bfcl
    assert CurateConfig().decontaminate_bfcl == []
    monkeypatch.setattr(bfcl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValidationError, match="pip install --no-deps bfcl-eval"):
        CurateConfig(decontaminate_bfcl=["irrelevance"])
