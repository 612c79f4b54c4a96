"""The BFCL adapter on a small hand-written copy of BFCL's layout (tests/data/bfcl)."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from fcsft.benchmarks import bfcl
from fcsft.benchmarks.bfcl import bfcl_references, load_bfcl
from fcsft.curate.stage import CurateConfig, curate
from fcsft.errors import UserError
from fcsft.evaluate.score import score_item
from fcsft.formats import get_format
from fcsft.records import FinalAnswer, Meta, Observation, Tool, ToolCall, Trajectory

FIXTURE = Path(__file__).parent / "data" / "bfcl"


@pytest.fixture(autouse=True)
def fixture_data(monkeypatch):
    monkeypatch.setattr(bfcl, "data_dir", lambda: FIXTURE)


def predicted(calls):
    return {"id": "x", "turns": [calls] if calls else [], "parse_error": None, "raw": ""}


def test_tools_become_openai_tools_with_json_schema_types():
    boil, plot, _ = load_bfcl("simple_python")
    function = boil["tools"][0]["function"]
    assert function["name"] == "kitchen_boil_time"  # OpenAI names have no dots
    assert function["description"] == "Minutes to boil water." + bfcl.PYTHON_NOTE
    parameters = function["parameters"]
    assert parameters["type"] == "object" and parameters["required"] == ["litres", "power_kw"]
    assert parameters["properties"]["litres"] == {
        "type": "number",
        "format": "float",
        "description": "Volume of water." + bfcl.FLOAT_NOTE,
    }
    assert parameters["properties"]["lid"]["default"] is True
    properties = plot["tools"][0]["function"]["parameters"]["properties"]
    assert properties["points"]["items"] == {"type": "array", "items": {"type": "integer"}}
    assert properties["style"]["type"] == "object"
    assert properties["style"]["properties"]["grid"]["type"] == "boolean"
    assert properties["extra"]["type"] == "string"  # BFCL checks "any" as a string


def test_items_carry_messages_possible_answers_and_one_right_gold():
    boil, plot, convert = load_bfcl("simple_python")
    assert boil["layer"] == "simple_python" and boil["kind"] == "ast"
    assert convert["messages"][0] == {"role": "system", "content": "You are terse."}
    assert boil["possible"] == [
        [{"kitchen_boil_time": {"litres": [2.0], "power_kw": [3], "lid": ["", True]}}]
    ]
    assert boil["gold"] == [
        [{"name": "kitchen_boil_time", "arguments": {"litres": 2.0, "power_kw": 3, "lid": True}}]
    ]
    assert plot["gold"][0][0]["arguments"] == {
        "points": [[1, 2], [3, 4]],
        "style": {"title": "Growth", "grid": False},
    }
    for item in [*load_bfcl("simple_python"), *load_bfcl("parallel")]:
        assert score_item(item, predicted(item["gold"][0]))["full_call"], item["id"]


def test_possible_answers_score_the_way_bfcl_does():
    (weather,) = load_bfcl("parallel")
    lima, oslo = {"city": "lima, peru"}, {"city": "Oslo", "unit": "metric"}
    calls = [{"name": "weather_now", "arguments": lima}, {"name": "weather_now", "arguments": oslo}]
    assert score_item(weather, predicted(calls))["full_call"]
    assert not score_item(weather, predicted(calls[:1]))["full_call"]
    boil = load_bfcl("simple_python")[0]
    int_litres = {"litres": 2, "power_kw": 3}  # an int for a float, lid left out
    assert score_item(boil, predicted([{"name": "kitchen_boil_time", "arguments": int_litres}]))[
        "full_call"
    ]
    dotted = [{"name": "kitchen.boil_time", "arguments": int_litres}]
    assert not score_item(boil, predicted(dotted))["full_call"]


def test_irrelevance_items_want_no_call():
    first, second = load_bfcl("irrelevance")
    assert first["gold"] == [] and "possible" not in first and first["kind"] == "irrelevance"
    assert len(second["messages"]) == 3
    assert score_item(first, predicted([]))["no_call"] is True
    call = [{"name": "weather_now", "arguments": {"city": "Rome"}}]
    assert score_item(first, predicted(call))["no_call"] is False


def test_a_limit_draws_the_same_items_in_file_order():
    drawn = [item["id"] for item in load_bfcl("simple_python", limit=2, seed=3)]
    assert drawn == [item["id"] for item in load_bfcl("simple_python", limit=2, seed=3)]
    assert len(drawn) == 2 and drawn == sorted(drawn)
    assert len(load_bfcl("simple_python", limit=10)) == 3


def test_errors_name_the_fix(monkeypatch):
    with pytest.raises(UserError, match="unknown BFCL category 'simple'; known: simple_python"):
        load_bfcl("simple")
    with pytest.raises(
        UserError, match="'simple_java' is not supported here: its answers are Java"
    ):
        load_bfcl("simple_java")
    with pytest.raises(UserError, match=r"BFCL_v4_multiple\.json: not found"):
        load_bfcl("multiple")
    monkeypatch.undo()
    monkeypatch.setattr(bfcl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match=r"run: pip install --no-deps bfcl-eval$"):
        load_bfcl("simple_python")


def test_references_for_decontamination_are_the_user_messages_and_functions():
    refs = list(bfcl_references(["irrelevance", "simple_python"]))
    assert [ref["id"] for ref in refs[:2]] == ["irrelevance_0", "irrelevance_1"]
    assert refs[0]["questions"] == ["Who painted the ceiling of the Sistine Chapel?"]
    assert refs[1]["questions"] == ["Tell me a joke about otters.", "Another one please."]
    assert refs[1]["functions"] == [("weather.now", "Current weather.")]
    texts = [q for ref in refs for q in ref["questions"]]
    assert len(texts) == 6 and "You are terse." not in texts


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
    openai = get_format("openai")
    records = [
        openai.render(trajectory("leak", "So how long does a kettle of two litres take to boil?")),
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
    assert reason.reason == "ngram match (1.00) with bfcl:simple_python item simple_python_0"
    assert report["decontamination"]["hits"] == {"bfcl:simple_python": 1, "bfcl:irrelevance": 0}
    assert report["decontamination"]["sets"] == {"bfcl:simple_python": 3, "bfcl:irrelevance": 2}
    (match,) = report["decontamination"]["matches"]
    assert match == {
        "id": "leak",
        "question": "So how long does a kettle of two litres take to boil?",
        "set": "bfcl:simple_python",
        "match_id": "simple_python_0",
        "match_text": "How long does a kettle of two litres take to boil on a three kilowatt "
        "stove in my small kitchen?",
        "how": "ngram",
        "score": 1.0,
    }


def test_curate_config_checks_bfcl_categories_before_any_work(monkeypatch):
    with pytest.raises(ValidationError, match="unknown BFCL categories \\['simple'\\]"):
        CurateConfig(decontaminate_bfcl=["simple"])
    assert CurateConfig(decontaminate_bfcl=["multi_turn_base"]).decontaminate_bfcl
    monkeypatch.undo()
    monkeypatch.setattr(bfcl.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValidationError, match="pip install --no-deps bfcl-eval"):
        CurateConfig(decontaminate_bfcl=["irrelevance"])
    assert CurateConfig().decontaminate_bfcl == []
