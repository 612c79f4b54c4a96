"""BFCL conformance: fcsft's scorer against BFCL's own AST checker, answer by answer.

Run: python bench/bfcl_conformance.py   (no arguments, about 4 s)
Needs bfcl-eval: pip install --no-deps bfcl-eval

For every item of BFCL's AST categories it builds model outputs from the possible answer: the
gold itself (first acceptable value of each parameter) and systematic perturbations of it
(another acceptable value, a wrong value, a wrong type, a missing required parameter, an
extra parameter, calls in reverse order, a wrong function name, an optional parameter left
out, an int for a float, a string in other case and spacing, a call too few or too many).
Each (output, possible answer) pair is scored by BFCL's `ast_checker` (its `valid`) and by
fcsft's `score_item(...)["full_call"]`; every disagreement is printed with the rule behind it.

BFCL's checker is called the way `fcsft.evaluate.official` calls it on real predictions (a
model whose tool names have "." as "_", as fcsft shows them).
"""

from __future__ import annotations

import copy
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

from fcsft.benchmarks.bfcl import AST, VERSION, data_dir, load_bfcl
from fcsft.evaluate.official import REASONS, bfcl_checker, passes_in_another_order
from fcsft.evaluate.score import score_item
from fcsft.jsonl import read_jsonl

EXTRA = "fcsft_extra_param"


def _omissible(values: list) -> bool:
    return any(isinstance(v, str) and v == "" for v in values)


def _written_as_pattern(value: Any) -> bool:
    """Whether BFCL writes this acceptable value key by key (an object, or a list of them)."""
    return isinstance(value, dict) or (
        isinstance(value, list) and any(isinstance(v, dict) for v in value)
    )


def _wrong(value: Any) -> Any:
    """A value of the same type that no one would accept for this one."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + (1 if isinstance(value, int) else 1.5)
    if isinstance(value, str):
        return value + " qx"
    if isinstance(value, list):
        return [*value, value[-1]] if value else ["qx"]
    if isinstance(value, dict):
        if not value:
            return {"qx": 1}
        key = next(iter(value))
        return {**value, key: _wrong(value[key])}
    return "qx"


def _retyped(value: Any) -> Any:
    """The same value as another JSON type, the way a model gets a type wrong."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | dict):
        return json.dumps(value)
    return 0


def _typed_dummy(schema: dict[str, Any]) -> Any:
    if "default" in schema and schema["default"] not in (None, ""):
        return schema["default"]
    return {"integer": 1, "number": 1.0, "boolean": True, "array": ["a"], "object": {"a": "b"}}.get(
        schema.get("type"), "abc"
    )


class Given(NamedTuple):
    """One argument of the gold output, with what the perturbations need to know about it."""

    index: int  # which call
    param: str
    value: Any
    schema: dict[str, Any]
    acceptable: list[Any]  # BFCL's acceptable values for it


class Case:
    """One item's gold output, and outputs made from it by changing one thing."""

    def __init__(self, item: dict[str, Any]):
        self.gold = item["gold"][0]
        self.tools = {t["function"]["name"]: t["function"]["parameters"] for t in item["tools"]}
        possible = [next(iter(c.values())) for c in item["possible"][0]]  # in gold's order
        self.given = [
            Given(
                index,
                param,
                value,
                self.tools.get(call["name"], {}).get("properties", {}).get(param, {}),
                possible[index].get(param, []),
            )
            for index, call in enumerate(self.gold)
            for param, value in call["arguments"].items()
        ]

    def required(self, index: int) -> list[str]:
        return self.tools.get(self.gold[index]["name"], {}).get("required", [])

    def with_arg(self, index: int, param: str, value: Any) -> list[dict[str, Any]]:
        calls = copy.deepcopy(self.gold)
        calls[index]["arguments"][param] = value
        return calls

    def without_arg(self, index: int, param: str) -> list[dict[str, Any]]:
        calls = copy.deepcopy(self.gold)
        del calls[index]["arguments"][param]
        return calls

    def renamed(self, index: int, name: str) -> list[dict[str, Any]]:
        calls = copy.deepcopy(self.gold)
        calls[index]["name"] = name
        return calls


Output = Iterator[tuple[str, list[dict[str, Any]]]]


def variants(case: Case) -> Output:
    """(label, output) for the gold and each perturbation that applies to this item."""
    yield "gold", case.gold
    given = case.given
    for g in given[:1] + given[-1:]:
        yield "wrong_value", case.with_arg(g.index, g.param, _wrong(g.value))
    for g in given[:1]:
        yield "wrong_type", case.with_arg(g.index, g.param, _retyped(g.value))
    for g in given:
        others = [v for v in g.acceptable if v not in ("", g.value) and not _written_as_pattern(v)]
        if others:
            yield "other_acceptable_value", case.with_arg(g.index, g.param, others[0])
            break
    for g in given:
        if g.param in case.required(g.index):
            yield "missing_required", case.without_arg(g.index, g.param)
            break
    for g in given:
        if _omissible(g.acceptable):
            yield "optional_omitted", case.without_arg(g.index, g.param)
            break
    for g in given:
        if not _omissible(g.acceptable) and g.param not in case.required(g.index):
            yield "listed_optional_omitted", case.without_arg(g.index, g.param)
            break
    yield "extra_unknown_param", case.with_arg(0, EXTRA, "x")
    for index, call in enumerate(case.gold):
        schema = case.tools.get(call["name"], {}).get("properties", {})
        unused = [p for p in schema if p not in call["arguments"]]
        if unused:
            value = _typed_dummy(schema[unused[0]])
            yield "extra_schema_param", case.with_arg(index, unused[0], value)
            break
    for g in given:
        if g.schema.get("type") == "number" and isinstance(g.value, float) and g.value.is_integer():
            yield "int_for_float", case.with_arg(g.index, g.param, int(g.value))
            break
    for g in given:
        if isinstance(g.value, str) and any(ch.isalpha() for ch in g.value):
            variant = g.value.swapcase().replace(" ", "_")
            yield "string_variant", case.with_arg(g.index, g.param, variant)
            break
    for g in given:
        if isinstance(g.value, dict) and g.value:
            yield "nested_wrong_value", case.with_arg(g.index, g.param, _wrong(g.value))
            break
    names = [n for n in case.tools if n != case.gold[0]["name"]]
    yield (
        "wrong_function_name",
        case.renamed(0, names[0] if names else "not_" + case.gold[0]["name"]),
    )
    if len(case.gold) > 1:
        yield "reversed_order", list(reversed(case.gold))
        yield "call_missing", case.gold[:-1]
    yield "call_repeated", [*case.gold, case.gold[0]]


def probes(case: Case) -> Output:
    """Outputs aimed at the rules where fcsft chose differently from BFCL (reported apart)."""
    for g in case.given:
        floats = (
            g.schema.get("type") == "array" and g.schema.get("items", {}).get("type") == "number"
        )
        if floats and g.value and all(isinstance(v, float) and v.is_integer() for v in g.value):
            ints = [int(v) for v in g.value]
            yield "probe:int_in_float_array", case.with_arg(g.index, g.param, ints)
            break
    objects = [g for g in case.given if isinstance(g.value, dict)]
    for g in objects:
        key = next((k for k, v in g.value.items() if type(v) is int), None)
        if key is not None:
            changed = {**g.value, key: float(g.value[key])}
            yield "probe:float_for_int_in_object", case.with_arg(g.index, g.param, changed)
            break
    for g in objects:
        key = next((k for k, v in g.value.items() if isinstance(v, list) and v), None)
        if key is not None and all(isinstance(v, str) for v in g.value[key]):
            changed = {**g.value, key: [v.swapcase() for v in g.value[key]]}
            yield "probe:string_case_in_list_in_object", case.with_arg(g.index, g.param, changed)
            break


def explain(label: str, bfcl: bool, ours: bool, calls: list, verdict: Callable) -> str:
    """Why the two checkers disagree on this pair (a key of REASONS), checked where it can be."""
    if label.startswith("probe:"):
        return label
    if ours and not bfcl and passes_in_another_order(calls, verdict):
        return "greedy_pairing"
    return f"unexplained:{label}"


class Verdict:
    """BFCL's verdict on outputs for one item."""

    def __init__(self, check: Callable, entry: dict, answer: list, category: str):
        self.check, self.entry, self.answer, self.category = check, entry, answer, category

    def __call__(self, calls: Iterable[dict[str, Any]]) -> bool:
        output = [{c["name"]: copy.deepcopy(c["arguments"])} for c in calls]
        functions = copy.deepcopy(self.entry["function"])
        return self.check(functions, output, copy.deepcopy(self.answer), self.category)["valid"]


def main() -> None:
    started = time.perf_counter()
    check = bfcl_checker()
    folder = data_dir()
    counts: Counter = Counter()
    by_label: Counter = Counter()
    accepted: Counter = Counter()
    disagreements: Counter = Counter()
    for category in AST:
        raw = {e["id"]: e for e in read_jsonl(folder / f"{VERSION}_{category}.json")}
        answers = {
            a["id"]: a["ground_truth"]
            for a in read_jsonl(folder / "possible_answer" / f"{VERSION}_{category}.json")
        }
        for item in load_bfcl(category):
            case = Case(item)
            verdict = Verdict(check, raw[item["id"]], answers[item["id"]], category)
            for label, calls in itertools.chain(variants(case), probes(case)):
                bfcl = verdict(calls)
                prediction = {"id": item["id"], "turns": [calls], "parse_error": None, "raw": ""}
                ours = bool(score_item(item, prediction)["full_call"])
                kind = "probe" if label.startswith("probe:") else "pair"
                counts[kind] += 1
                counts[f"{kind}_agree"] += bfcl == ours
                by_label[label] += 1
                accepted[label] += bfcl
                if bfcl == ours:
                    continue
                why = explain(label, bfcl, ours, calls, verdict)
                disagreements[why] += 1
                output = [{c["name"]: c["arguments"]} for c in calls]
                print(f"DISAGREE {item['id']} [{label}] bfcl={bfcl} fcsft={ours}: {why}")
                print(f"    why:      {REASONS.get(why, 'not understood')}")
                print(f"    output:   {json.dumps(output, ensure_ascii=False)[:400]}")
                print(f"    possible: {json.dumps(answers[item['id']], ensure_ascii=False)[:400]}")
    print("output kind: pairs, of which BFCL accepts")
    for label, count in by_label.items():
        print(f"  {label:38s} {count:6d} {accepted[label]:6d}")
    print("disagreements:")
    for why, count in disagreements.most_common():
        print(f"  {count:6d}  {why}: {REASONS.get(why, 'not understood')}")
    figures = {
        "pairs": counts["pair"],
        "agreement": round(counts["pair_agree"] / counts["pair"], 5),
        "probe_pairs": counts["probe"],
        "probe_agreement": round(counts["probe_agree"] / max(counts["probe"], 1), 5),
        "disagreements": sum(disagreements.values()),  # by reason: printed above
        "seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps({"bench": "bfcl_conformance", "figures": figures}))


if __name__ == "__main__":
    main()
