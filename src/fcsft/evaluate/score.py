"""Scoring a prediction's tool calls against an eval item, and rates with their 95% intervals.

Gold comes in two shapes, read into one (`expected_turns`):

    gold       [[{"name", "arguments"}...] per turn]: our own items, one right value per
               argument. An optional schema parameter the gold leaves out may be left out or
               given its schema default; one the gold gives its default may be left out.
    possible   [[{name: {param: [acceptable values]}}...] per turn]: BFCL's possible answers,
               where "" among the values means the parameter may be left out and an object is
               written {key: [acceptable values]} in turn. Wins over `gold` when both are there.

A value is right when it equals an acceptable one: strings after BFCL's normalisation (case,
spaces and `,./-_*^` ignored, ' read as "), booleans and null exactly, numbers by value where the
schema allows their type (an int for a number, never a float for an integer, never a bool for
either), arrays element by element in order, objects key by key. Gold that disagrees with its own
schema (a string for an integer parameter, BFCL's "variables") is matched as written.

Metrics per item, None where one does not apply:

    tool_selection  the names called, as a multiset over all turns, are gold's
    parameters      every call pairs off with a gold call of its name whose arguments it gets
                    right, turns pooled (right tools with right arguments, in any order)
    call_order      turn by turn, the names called are gold's (calls within a turn in any order)
    full_call       turn by turn, every call pairs off with a gold call, name and arguments
                    right: BFCL's AST accuracy
    no_call         should-not-call items only: nothing was called and the reply parsed
    called          should-call items only: the reply parsed and called at least one function
                    (its rate is the call rate, the other side of no_call: a model that learns
                    to decline everywhere scores well on no_call and badly here)
    parse_failure   the reply tried to call and could not be parsed (every item)

A reply that could not be parsed is never "did not call" and never "called": every call metric,
no_call and called are False for it. On should-not-call items (gold []) tool_selection is True
when nothing was called, and parameters, call_order, full_call and called do not apply.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from fcsft.intervals import wilson

METRICS = (
    "tool_selection",
    "parameters",
    "call_order",
    "full_call",
    "no_call",
    "called",
    "parse_failure",
)
CALL_METRICS = ("parameters", "call_order", "full_call")

_IGNORED = re.compile(r"[ ,./\-_*^]")


@dataclass(frozen=True)
class Accept:
    """What one argument may be: equal to any of `options`, or left out when `optional`."""

    options: tuple[Any, ...]
    optional: bool = False


@dataclass(frozen=True)
class Fields:
    """An object given key by key: what each key may be (a key not named here is wrong)."""

    keys: dict[str, Accept]


@dataclass(frozen=True)
class ExpectedCall:
    name: str
    arguments: Fields


def squash(text: str) -> str:
    """A string as BFCL compares it: no case, no spaces or `,./-_*^`, ' read as "."""
    return _IGNORED.sub("", text).lower().replace("'", '"')


def tool_schemas(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each tool's parameter schema by name (OpenAI tools, or bare {name, parameters})."""
    schemas = {}
    for tool in item.get("tools") or []:
        function = tool.get("function", tool)
        schemas[function["name"]] = function.get("parameters") or {}
    return schemas


def expected_turns(item: dict[str, Any]) -> list[list[ExpectedCall]]:
    """The item's gold, per turn, in the one form both gold shapes are read into."""
    schemas = tool_schemas(item)
    if item.get("possible") is not None:
        return [
            [
                ExpectedCall(name, _possible_fields(params, schemas.get(name)))
                for call in turn
                for name, params in call.items()
            ]
            for turn in item["possible"]
        ]
    return [
        [
            ExpectedCall(
                call["name"], _exact_fields(call.get("arguments") or {}, schemas.get(call["name"]))
            )
            for call in turn
        ]
        for turn in item.get("gold") or []
    ]


def _declared(schema: dict[str, Any] | None, key: str) -> Any:
    return schema.get(key) if isinstance(schema, dict) else None


def _exact(value: Any, schema: dict[str, Any] | None) -> Any:
    """One exact gold value as an option: objects the schema describes become Fields."""
    if isinstance(value, dict) and isinstance(_declared(schema, "properties"), dict):
        return _exact_fields(value, schema)
    if isinstance(value, list):
        items = _declared(schema, "items")
        return [_exact(v, items if isinstance(items, dict) else None) for v in value]
    return value


def _exact_fields(values: dict[str, Any], schema: dict[str, Any] | None) -> Fields:
    properties = _declared(schema, "properties") or {}
    required = set(_declared(schema, "required") or [])
    keys = {}
    for key, value in values.items():
        sub = properties.get(key)
        default_given = (
            key not in required
            and isinstance(sub, dict)
            and "default" in sub
            and _equal(value, sub["default"], sub)
        )
        keys[key] = Accept((_exact(value, sub),), optional=default_given)
    for key, sub in properties.items():
        if key in values or key in required:
            continue
        has_default = isinstance(sub, dict) and "default" in sub
        keys[key] = Accept((_exact(sub["default"], sub),) if has_default else (), optional=True)
    return Fields(keys)


def _possible_fields(params: dict[str, Any], schema: dict[str, Any] | None) -> Fields:
    properties = _declared(schema, "properties") or {}
    return Fields({key: _possible(values, properties.get(key)) for key, values in params.items()})


def _possible(values: Any, schema: dict[str, Any] | None) -> Accept:
    values = values if isinstance(values, list) else [values]
    optional = any(v == "" and isinstance(v, str) for v in values)
    return Accept(tuple(_possible_option(v, schema) for v in values), optional)


def _possible_option(value: Any, schema: dict[str, Any] | None) -> Any:
    if isinstance(value, dict):  # BFCL writes an object key by key: {key: [acceptable values]}
        return _possible_fields(value, schema)
    if isinstance(value, list):
        items = _declared(schema, "items")
        return [_possible_option(v, items if isinstance(items, dict) else None) for v in value]
    return value


def _number_fits(value: int | float, schema: dict[str, Any] | None) -> bool:
    declared = _declared(schema, "type")
    declared = declared if isinstance(declared, list) else [declared]
    if None in declared or "number" in declared:
        return True
    return "integer" in declared and isinstance(value, int)


def _equal(value: Any, option: Any, schema: dict[str, Any] | None) -> bool:
    """Whether `value` is the acceptable `option` (see the module docstring for the rules)."""
    if isinstance(option, Fields):
        return isinstance(value, dict) and _fits(value, option, schema)
    if isinstance(option, list):
        items = _declared(schema, "items")
        items = items if isinstance(items, dict) else None
        return (
            isinstance(value, list)
            and len(value) == len(option)
            and all(_equal(v, o, items) for v, o in zip(value, option, strict=True))
        )
    if isinstance(option, dict):
        properties = _declared(schema, "properties") or {}
        return (
            isinstance(value, dict)
            and value.keys() == option.keys()
            and all(_equal(value[k], option[k], properties.get(k)) for k in option)
        )
    if isinstance(option, str):
        return isinstance(value, str) and squash(value) == squash(option)
    if isinstance(option, bool) or option is None:
        return value is option
    if isinstance(option, int | float):
        if isinstance(value, bool) or not isinstance(value, int | float) or value != option:
            return False
        return type(value) is type(option) or _number_fits(value, schema)
    return value == option


def _fits(
    values: dict[str, Any], fields: Fields, schema: dict[str, Any] | None, top: bool = False
) -> bool:
    """Whether an object's keys are all acceptable and every one left out may be.

    A call's own parameters must be ones its schema declares; a nested object may carry keys
    its schema does not name unless it says `additionalProperties: false` (JSON schema's rule).
    """
    properties = _declared(schema, "properties") or {}
    required = _declared(schema, "required") or []
    if any(key not in values for key in required):
        return False
    extra = _declared(schema, "additionalProperties")
    closed = bool(properties) and (extra is False or (top and not extra))
    for key, value in values.items():
        accept = fields.keys.get(key)
        if accept is None or (closed and key not in properties):
            return False
        if not any(_equal(value, option, properties.get(key)) for option in accept.options):
            return False
    return all(accept.optional for key, accept in fields.keys.items() if key not in values)


def _call_is_right(call: dict[str, Any], expected: ExpectedCall, schemas: dict[str, Any]) -> bool:
    arguments = call.get("arguments")
    return (
        call.get("name") == expected.name
        and isinstance(arguments, dict)
        and _fits(arguments, expected.arguments, schemas.get(expected.name), top=True)
    )


def _pair_off(calls: list[dict[str, Any]], expected: list[ExpectedCall], schemas: dict) -> bool:
    """Whether calls and gold calls pair off one to one, each call right for its partner."""
    if len(calls) != len(expected):
        return False
    right = [[_call_is_right(c, e, schemas) for c in calls] for e in expected]
    partner: dict[int, int] = {}  # call index -> gold index; augmenting paths, not greedy

    def claim(gold: int, seen: set[int]) -> bool:
        for index, fits in enumerate(right[gold]):
            if fits and index not in seen:
                seen.add(index)
                if index not in partner or claim(partner[index], seen):
                    partner[index] = gold
                    return True
        return False

    return all(claim(gold, set()) for gold in range(len(expected)))


def _names(calls: list[Any]) -> Counter:
    return Counter(c.name if isinstance(c, ExpectedCall) else c.get("name") for c in calls)


def score_item(item: dict[str, Any], prediction: dict[str, Any]) -> dict[str, bool | None]:
    """The six metrics of one prediction (see the module docstring)."""
    expected = [turn for turn in expected_turns(item) if turn]
    should_call = bool(expected)
    if prediction.get("parse_error"):
        row: dict[str, bool | None] = dict.fromkeys(METRICS, False)
        row["parse_failure"] = True
        if should_call:
            row["no_call"] = None
        else:
            row.update(dict.fromkeys((*CALL_METRICS, "called"), None))
        return row
    turns = [[c for c in turn if isinstance(c, dict)] for turn in prediction.get("turns") or []]
    turns = [turn for turn in turns if turn]
    if not should_call:
        return {
            "tool_selection": not turns,
            **dict.fromkeys(CALL_METRICS, None),
            "no_call": not turns,
            "called": None,
            "parse_failure": False,
        }
    schemas = tool_schemas(item)
    calls = [c for turn in turns for c in turn]
    gold = [e for turn in expected for e in turn]
    aligned = len(turns) == len(expected)
    return {
        "tool_selection": _names(calls) == _names(gold),
        "parameters": _pair_off(calls, gold, schemas),
        "call_order": aligned
        and all(_names(t) == _names(e) for t, e in zip(turns, expected, strict=True)),
        "full_call": aligned
        and all(_pair_off(t, e, schemas) for t, e in zip(turns, expected, strict=True)),
        "no_call": None,
        "called": bool(calls),
        "parse_failure": False,
    }


def _rates(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    rates = {}
    for metric in METRICS:
        values = [bool(row[metric]) for row in rows if row.get(metric) is not None]
        p = wilson(sum(values), len(values))
        rates[metric] = {
            "k": p.k,
            "n": p.n,
            "rate": round(p.value, 4) if p.n else None,
            "ci95": [round(p.low, 4), round(p.high, 4)],
        }
    return rates


def summarise(
    rows: list[dict[str, Any]], by: str | None = "layer"
) -> dict[str, dict[str, dict[str, Any]]]:
    """Each metric's k/n, rate and 95% Wilson interval per value of `by`, then over "all".

    A row's None metrics are left out of that metric's n; a metric no row applies to has
    n 0, rate None and the interval [0, 1].
    """
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if by is not None:
        for row in rows:
            groups[str(row[by])].append(row)
    summary = {name: _rates(members) for name, members in sorted(groups.items())}
    summary["all"] = _rates(rows)
    return summary
