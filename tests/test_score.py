"""The scorer on hand-made predictions whose right scores are known."""

import pytest

from fcsft.evaluate.score import METRICS, score_item, squash, summarise
from fcsft.intervals import wilson


def tool(name, properties, required=(), **extra):
    parameters = {"type": "object", "properties": properties, "required": list(required)}
    return {"type": "function", "function": {"name": name, "parameters": parameters | extra}}


TOOLS = [
    tool(
        "get_weather",
        {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
            "days": {"type": "integer"},
        },
        required=["city"],
    ),
    tool("set_temp", {"value": {"type": "number"}, "eco": {"type": "boolean"}}, ["value"]),
    tool(
        "book",
        {
            "trip": {
                "type": "object",
                "properties": {
                    "from": {"type": "string"},
                    "to": {"type": "string"},
                    "seats": {"type": "integer"},
                    "class": {"type": "string", "default": "economy"},
                },
                "required": ["from", "to"],
            },
            "tags": {"type": "array", "items": {"type": "string"}},
            "weights": {"type": "array", "items": {"type": "number"}},
        },
        required=["trip"],
    ),
]


def item(gold, **extra):
    return (
        {"id": "i", "layer": "standard", "kind": "k", "question": "q", "tools": TOOLS}
        | {"gold": gold}
        | extra
    )


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def score(it, turns, parse_error=None):
    return score_item(it, {"id": "i", "turns": turns, "parse_error": parse_error, "raw": ""})


def right(it, *turns):
    return score(it, list(turns))["full_call"]


WEATHER = item([[call("get_weather", city="Paris", days=3)]])
TRIP = {"from": "Paris", "to": "Rome", "seats": 2}
BOOK = item([[call("book", trip=TRIP, tags=["beach", "cheap"])]])


def test_an_exact_answer_is_right_on_every_metric():
    assert score(WEATHER, [[call("get_weather", city="Paris", days=3)]]) == {
        "tool_selection": True,
        "parameters": True,
        "call_order": True,
        "full_call": True,
        "no_call": None,
        "called": True,
        "parse_failure": False,
    }


def test_a_parse_failure_fails_every_call_metric_and_is_never_a_no_call():
    row = score(WEATHER, [], parse_error="bad JSON at offset 3")
    assert row == dict.fromkeys(METRICS, False) | {"no_call": None, "parse_failure": True}
    # Even with calls recovered before the failure.
    assert score(WEATHER, [[call("get_weather", city="Paris", days=3)]], "x")["full_call"] is False
    empty = score(item([]), [], parse_error="unclosed <tool_call>")
    assert empty["no_call"] is False and empty["tool_selection"] is False
    assert empty["parse_failure"] is True
    assert [empty[m] for m in ("parameters", "call_order", "full_call", "called")] == [None] * 4


def test_no_call_items():
    quiet = score(item([]), [])
    assert quiet == {
        "tool_selection": True,
        "parameters": None,
        "call_order": None,
        "full_call": None,
        "no_call": True,
        "called": None,
        "parse_failure": False,
    }
    loud = score(item([]), [[call("get_weather", city="Paris")]])
    assert loud["no_call"] is False and loud["tool_selection"] is False
    assert score(item([]), [[]])["no_call"] is True  # an empty turn calls nothing


def test_the_call_rate_counts_any_parsed_call_on_items_that_need_one():
    wrong = score(WEATHER, [[call("get_time", city="Paris")]])
    assert wrong["called"] is True and wrong["full_call"] is False
    assert score(WEATHER, [])["called"] is False  # declined where a call was needed
    assert score(WEATHER, [[]])["called"] is False
    assert score(WEATHER, [], parse_error="unclosed <tool_call>")["called"] is False
    assert score(item([]), [[call("get_weather", city="Paris")]])["called"] is None


def test_parallel_calls_in_swapped_order_are_right():
    it = item([[call("get_weather", city="Paris"), call("get_weather", city="Rome")]])
    row = score(it, [[call("get_weather", city="Rome"), call("get_weather", city="Paris")]])
    assert all(row[m] for m in ("tool_selection", "parameters", "call_order", "full_call"))
    # The same call twice is not both calls.
    twice = score(it, [[call("get_weather", city="Paris"), call("get_weather", city="Paris")]])
    assert twice["tool_selection"] and not twice["parameters"] and not twice["full_call"]


def test_pairing_is_searched_not_greedy():
    # Gold call 0 accepts either city, gold call 1 only Paris: a greedy pairing that gives
    # gold 0 the first call (Paris) leaves Rome for gold 1 and fails.
    it = item(
        [],
        possible=[
            [
                {"get_weather": {"city": ["Paris", "Rome"]}},
                {"get_weather": {"city": ["Paris"]}},
            ]
        ],
    )
    assert right(it, [call("get_weather", city="Paris"), call("get_weather", city="Rome")])


def test_a_wrong_value_fails_parameters_but_not_selection_or_order():
    row = score(WEATHER, [[call("get_weather", city="Lyon", days=3)]])
    assert row["tool_selection"] and row["call_order"]
    assert not row["parameters"] and not row["full_call"]


def test_a_wrong_function_fails_selection():
    row = score(WEATHER, [[call("set_temp", value=3)]])
    assert not any(row[m] for m in ("tool_selection", "parameters", "call_order", "full_call"))


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"city": "Paris", "days": 3}, True),
        ({"city": "Paris", "days": "3"}, False),  # a string for an integer
        ({"city": "Paris", "days": 3.0}, False),  # a float is never an integer
        ({"city": "Paris", "days": 3.5}, False),
        ({"city": ["Paris"], "days": 3}, False),  # an array for a string
        ({"city": "Paris", "days": None}, False),
    ],
)
def test_types_of_integers_and_strings(arguments, expected):
    assert right(WEATHER, [{"name": "get_weather", "arguments": arguments}]) is expected


def test_numbers_take_ints_and_bools_are_never_numbers():
    it = item([[call("set_temp", value=20.0, eco=True)]])
    assert right(it, [call("set_temp", value=20, eco=True)])  # an int for a number
    assert right(it, [call("set_temp", value=20.0, eco=True)])
    assert not right(it, [call("set_temp", value=20.0, eco=1)])  # 1 is not True
    assert not right(it, [call("set_temp", value=20.0, eco="true")])
    ones = item([[call("get_weather", city="Paris", days=1)]])
    assert not right(ones, [call("get_weather", city="Paris", days=True)])  # True is not 1


def test_a_missing_required_parameter_is_wrong():
    assert not right(WEATHER, [call("get_weather", days=3)])
    assert not right(BOOK, [call("book", tags=["beach", "cheap"])])


def test_an_extra_parameter_is_wrong():
    assert not right(WEATHER, [call("get_weather", city="Paris", days=3, hourly=True)])
    # An optional schema parameter the gold leaves out: its default is fine, nothing else is.
    assert right(WEATHER, [call("get_weather", city="Paris", days=3, unit="celsius")])
    assert not right(WEATHER, [call("get_weather", city="Paris", days=3, unit="fahrenheit")])


def test_optional_parameters():
    assert not right(WEATHER, [call("get_weather", city="Paris")])  # gold gave days=3
    # Gold that gives the default may be met by leaving the parameter out.
    default = item([[call("get_weather", city="Paris", unit="celsius")]])
    assert right(default, [call("get_weather", city="Paris")])
    other = item([[call("get_weather", city="Paris", unit="fahrenheit")]])
    assert not right(other, [call("get_weather", city="Paris")])
    # An optional parameter without a default that gold leaves out must stay out.
    bare = item([[call("get_weather", city="Paris")]])
    assert right(bare, [call("get_weather", city="Paris")])
    assert not right(bare, [call("get_weather", city="Paris", days=1)])


def test_enum_values():
    it = item([[call("get_weather", city="Paris", unit="fahrenheit")]])
    assert right(it, [call("get_weather", city="Paris", unit="fahrenheit")])
    assert right(it, [call("get_weather", city="Paris", unit="Fahrenheit")])  # as BFCL does
    assert not right(it, [call("get_weather", city="Paris", unit="celsius")])
    assert not right(it, [call("get_weather", city="Paris", unit="kelvin")])


def test_nested_objects_and_arrays():
    assert right(BOOK, [call("book", trip={"to": "Rome", "seats": 2, "from": "Paris"},
                             tags=["beach", "cheap"])])  # fmt: skip
    assert right(BOOK, [call("book", trip=TRIP | {"class": "economy"}, tags=["beach", "cheap"])])
    for trip in (
        TRIP | {"seats": "2"},  # wrong type inside
        TRIP | {"seats": 3},  # wrong value inside
        TRIP | {"class": "first"},  # not the nested default
        TRIP | {"pets": 1},  # a key gold does not have
        {"from": "Paris", "seats": 2},  # a nested required key missing
    ):
        assert not right(BOOK, [call("book", trip=trip, tags=["beach", "cheap"])]), trip
    assert not right(BOOK, [call("book", trip=TRIP, tags=["cheap", "beach"])])  # order counts
    assert not right(BOOK, [call("book", trip=TRIP, tags=["beach"])])
    assert right(BOOK, [call("book", trip=TRIP, tags=["Beach", "CHEAP"])])
    floats = item([[call("book", trip=TRIP, weights=[1.0, 2.5])]])
    assert right(
        floats, [call("book", trip=TRIP, weights=[1, 2.5])]
    )  # ints are numbers, nested too
    assert not right(floats, [call("book", trip=TRIP, weights=[True, 2.5])])


def test_string_normalisation_follows_bfcl():
    assert squash("New York, NY") == squash("new york ny") == "newyorkny"
    assert squash("it's") == 'it"s'
    it = item([[call("get_weather", city="New York, NY", days=3)]])
    for city in ("new york ny", "NEW-YORK_NY", "New York, N.Y."):
        assert right(it, [call("get_weather", city=city, days=3)]), city
    assert not right(it, [call("get_weather", city="New York City", days=3)])


def test_multi_turn_order():
    it = item([[call("get_weather", city="Paris")], [call("set_temp", value=21)]])
    assert score(it, [[call("get_weather", city="Paris")], [call("set_temp", value=21)]])[
        "full_call"
    ]
    swapped = score(it, [[call("set_temp", value=21)], [call("get_weather", city="Paris")]])
    assert swapped["tool_selection"] and swapped["parameters"]
    assert not swapped["call_order"] and not swapped["full_call"]
    merged = score(it, [[call("set_temp", value=21), call("get_weather", city="Paris")]])
    assert merged["tool_selection"] and merged["parameters"] and not merged["call_order"]
    stopped = score(it, [[call("get_weather", city="Paris")]])  # stopped after the first turn
    assert not stopped["tool_selection"] and not stopped["call_order"]
    # Same names turn by turn, arguments in the wrong turns: order right, full call wrong.
    twin = item([[call("set_temp", value=1)], [call("set_temp", value=2)]])
    crossed = score(twin, [[call("set_temp", value=2)], [call("set_temp", value=1)]])
    assert crossed["call_order"] and crossed["parameters"] and not crossed["full_call"]


def test_possible_answers_in_bfcl_shape():
    it = item(
        [],
        possible=[
            [
                {
                    "book": {
                        "trip": [{"from": ["Paris"], "to": ["Rome", "Roma"], "seats": ["", 2]}],
                        "tags": [["beach"], ["beach", "cheap"], ""],
                    }
                }
            ]
        ],
    )
    assert right(it, [call("book", trip={"from": "Paris", "to": "Roma"})])
    assert right(
        it, [call("book", trip={"from": "paris", "to": "Rome", "seats": 2}, tags=["beach"])]
    )
    assert not right(it, [call("book", trip={"from": "Paris", "to": "Rome", "seats": 3})])
    assert not right(it, [call("book", trip={"from": "Paris"})])
    assert not right(it, [call("book", trip={"from": "Paris", "to": "Rome"}, tags=["cheap"])])
    # Possible answers win over gold; parameters they do not name may not be given.
    assert not right(it, [call("book", trip={"from": "Paris", "to": "Rome"}, weights=[1.0])])


def test_gold_that_disagrees_with_its_schema_is_matched_as_written():
    # BFCL's "variables": a string where the schema says integer.
    it = item([], possible=[[{"get_weather": {"city": ["Paris"], "days": ["n_days"]}}]])
    assert right(it, [call("get_weather", city="Paris", days="n_days")])
    assert not right(it, [call("get_weather", city="Paris", days=3)])


def test_summarise_counts_applicable_rows_with_wilson_intervals():
    rows = [
        {"layer": "standard", "full_call": True, "no_call": None, "parse_failure": False},
        {"layer": "standard", "full_call": False, "no_call": None, "parse_failure": True},
        {"layer": "standard", "full_call": True, "no_call": None, "parse_failure": False},
        {"layer": "adversarial", "full_call": None, "no_call": True, "parse_failure": False},
    ]
    summary = summarise(rows)
    assert list(summary) == ["adversarial", "standard", "all"]
    full = summary["standard"]["full_call"]
    expected = wilson(2, 3)
    assert full == {
        "k": 2,
        "n": 3,
        "rate": round(2 / 3, 4),
        "ci95": [round(expected.low, 4), round(expected.high, 4)],
    }
    assert summary["adversarial"]["full_call"] == {"k": 0, "n": 0, "rate": None, "ci95": [0.0, 1.0]}
    assert summary["all"]["no_call"]["n"] == 1 and summary["all"]["parse_failure"]["k"] == 1
    assert set(summary["all"]) == set(METRICS)
    assert list(summarise(rows, by=None)) == ["all"]
