"""BFCL's own checker beside fcsft's scorer on real predictions: both verdicts, agreement, and
every disagreement with its reason."""

import json

import pytest

from fcsft.benchmarks import bfcl
from fcsft.benchmarks.bfcl import load_bfcl
from fcsft.evaluate.report import report
from fcsft.jsonl import write_jsonl

pytest.importorskip("bfcl_eval")

WEATHER = {
    "name": "weather.now",
    "description": "Current weather.",
    "parameters": {
        "type": "dict",
        "properties": {"city": {"type": "string", "description": "City name."}},
        "required": ["city"],
    },
}
STYLE = {
    "name": "draw",
    "description": "Draw a box.",
    "parameters": {
        "type": "dict",
        "properties": {
            "style": {
                "type": "dict",
                "description": "How it looks.",
                "properties": {"size": {"type": "integer", "description": "Size."}},
            }
        },
        "required": ["style"],
    },
}


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A BFCL folder of one item per rule the tests need."""
    folder = tmp_path / "bfcl"
    entries = {
        "simple_python": [
            {
                "id": "simple_python_0",
                "question": [[{"role": "user", "content": "Box of 5"}]],
                "function": [STYLE],
            },
        ],
        "parallel": [
            {
                "id": "parallel_0",
                "question": [[{"role": "user", "content": "Oslo and Lima"}]],
                "function": [WEATHER],
            },
        ],
        "irrelevance": [
            {
                "id": f"irrelevance_{k}",
                "question": [[{"role": "user", "content": f"Joke {k}"}]],
                "function": [WEATHER],
            }
            for k in range(3)
        ],
    }
    answers = {
        "simple_python": [
            {"id": "simple_python_0", "ground_truth": [{"draw": {"style": [{"size": [5]}]}}]}
        ],
        # The first answer fits either city, the second only Oslo: BFCL's greedy pairing gives
        # the first answer Oslo when Oslo comes first, and then finds nothing for the second.
        "parallel": [
            {
                "id": "parallel_0",
                "ground_truth": [
                    {"weather.now": {"city": ["Oslo", "Lima"]}},
                    {"weather.now": {"city": ["Oslo"]}},
                ],
            }
        ],
    }
    for category, rows in entries.items():
        write_jsonl(folder / f"{bfcl.VERSION}_{category}.json", rows)
    for category, rows in answers.items():
        write_jsonl(folder / "possible_answer" / f"{bfcl.VERSION}_{category}.json", rows)
    monkeypatch.setattr(bfcl, "data_dir", lambda: folder)
    return folder


def call(name, **arguments):
    return {"name": name, "arguments": arguments}


def predicted(item, calls=None, parse_error=None):
    return {
        "id": item["id"],
        "layer": item["layer"],
        "turns": [calls] if calls else [],
        "parse_error": parse_error,
        "model_error": None,
        "raw": [],
    }


def evaluated(tmp_path, pairs):
    directory = tmp_path / "eval"
    write_jsonl(directory / "items.jsonl", [item for item, _ in pairs])
    write_jsonl(directory / "predictions" / "out.jsonl", [p for _, p in pairs])
    return report(directory, {"model": "mock"}), directory


def test_both_verdicts_per_item_and_every_disagreement_with_its_reason(tmp_path, data):
    (box,) = load_bfcl("simple_python")
    (weather,) = load_bfcl("parallel")
    joke, garbled, loud = load_bfcl("irrelevance")
    oslo, lima = call("weather_now", city="Oslo"), call("weather_now", city="Lima")
    pairs = [
        (box, predicted(box, [call("draw", style={"size": 5.0})])),  # a float for an integer
        (weather, predicted(weather, [oslo, lima])),
        (joke, predicted(joke)),
        (garbled, predicted(garbled, parse_error="unclosed <tool_call>")),
        (loud, predicted(loud, [call("weather_now", city="Rome")])),
    ]
    result, directory = evaluated(tmp_path, pairs)
    checked = result["official"]
    assert checked["checker"].startswith("bfcl_eval ") and "ast_checker" in checked["checker"]
    assert checked["verdicts"] == {
        "simple_python_0": {"fcsft": False, "bfcl": True},
        "parallel_0": {"fcsft": True, "bfcl": False},
        "irrelevance_0": {"fcsft": True, "bfcl": True},
        "irrelevance_1": {"fcsft": False, "bfcl": True},
        "irrelevance_2": {"fcsft": False, "bfcl": False},
    }
    assert (checked["n"], checked["agree"], checked["agreement"]) == (5, 2, 0.4)
    reasons = {row["id"]: row["reason"] for row in checked["disagreements"]}
    assert reasons == {
        "simple_python_0": "bfcl accepts what fcsft rejects",
        "parallel_0": "greedy_pairing",
        "irrelevance_1": "undecodable_is_no_call",
    }
    greedy = next(r for r in checked["disagreements"] if r["id"] == "parallel_0")
    assert "first unused call" in greedy["explanation"]
    assert json.loads(greedy["output"]) == [
        {"weather_now": {"city": "Oslo"}},
        {"weather_now": {"city": "Lima"}},
    ]
    saved = json.loads((directory / "report.json").read_text())
    assert saved["official"] == checked
    page = (directory / "report.html").read_text()
    assert "agrees with fcsft on 2 of 5 predictions (40.00%)" in page


def test_agreement_on_right_and_wrong_answers_and_the_other_order(tmp_path, data):
    (box,) = load_bfcl("simple_python")
    (weather,) = load_bfcl("parallel")
    oslo, lima = call("weather_now", city="Oslo"), call("weather_now", city="Lima")
    pairs = [
        (box, predicted(box, [call("draw", style={"size": 5})])),
        (weather, predicted(weather, [lima, oslo])),  # the order BFCL's pairing can follow
    ]
    checked = evaluated(tmp_path, pairs)[0]["official"]
    assert checked["verdicts"] == {
        "simple_python_0": {"fcsft": True, "bfcl": True},
        "parallel_0": {"fcsft": True, "bfcl": True},
    }
    assert checked["agreement"] == 1.0 and checked["disagreements"] == []
    wrong = [(box, predicted(box, [call("draw", style={"size": 6})]))]
    assert evaluated(tmp_path, wrong)[0]["official"]["verdicts"] == {
        "simple_python_0": {"fcsft": False, "bfcl": False}
    }


def test_items_that_are_not_bfcl_get_no_official_section(tmp_path):
    from test_eval_report import base_predictions, eval_dir

    result = report(eval_dir(tmp_path, base_predictions()), {"model": "mock"})
    assert "official" not in result
