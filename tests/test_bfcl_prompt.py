"""BFCL's own prompting form: the system prompt, the lenient reply parser, the few-shot
examples, and `fcsft eval --protocol bfcl` end to end with a scripted model."""

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from clirun import fcsft
from fcsft.agent import run_agent
from fcsft.benchmarks import bfcl
from fcsft.errors import UserError
from fcsft.evaluate.bfcl_prompt import (
    DECLINE,
    SHOT_SOURCES,
    bfcl_messages,
    check_shots_apart,
    parse_calls,
    shots,
    system_prompt,
)
from fcsft.evaluate.predict import predict_item
from fcsft.evaluate.score import score_item
from fcsft.models.mock import MockProvider
from fcsft.records import FinalAnswer, Observation, Tool, ToolCall
from fcsft.text.near import normalise

pytest.importorskip("bfcl_eval")

FIXTURE = Path(__file__).parent / "data" / "bfcl"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


def read(text):
    return parse_calls(text, [WEATHER])


def test_a_python_list_of_calls_is_read_anywhere_in_the_reply():
    text = "Sure! Here you go: [get_weather(city='Paris', days=3)] Hope that helps."
    assert read(text) == (
        [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}],
        None,
    )
    two = "[get_weather(city='Oslo'), get.weather(city='Lima')]"  # "." read as "_"
    assert [c["arguments"]["city"] for c in read(two)[0]] == ["Oslo", "Lima"]
    assert read(two)[0][1]["name"] == "get_weather"
    assert read("[get_weather('Rome', 2)]")[0] == [
        {"name": "get_weather", "arguments": {"city": "Rome", "days": 2}}
    ]
    assert read("[get_weather(city=home_town)]")[0][0]["arguments"] == {"city": "home_town"}
    assert read("[get_weather(city='A', days=1 + 2)]")[0][0]["arguments"]["days"] == "1 + 2"


def test_json_calls_are_read_in_every_common_shape():
    plain = 'I will call {"name": "get_weather", "arguments": {"city": "Paris"}} now.'
    assert read(plain)[0] == [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    bfcl_json = '```json\n[{"function":"get_weather","parameters":{"city":"Oslo"}}]\n```'
    assert read(bfcl_json)[0] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    openai = {"function": {"name": "get_weather", "arguments": json.dumps({"city": "Lima"})}}
    assert read(json.dumps(openai))[0] == [{"name": "get_weather", "arguments": {"city": "Lima"}}]
    assert read('{"city": "Paris"}') == ([], None)  # an object, not a call


def test_a_bare_call_counts_only_for_an_offered_function():
    assert read('I would run get_weather(city="Paris") for that.')[0] == [
        {"name": "get_weather", "arguments": {"city": "Paris"}}
    ]
    assert read("You could print('hello') yourself.") == ([], None)
    assert read(DECLINE) == ([], None)


def test_an_offered_call_that_cannot_be_read_is_a_parse_failure():
    calls, error = read("get_weather(city=Paris")
    assert calls == [] and "get_weather" in error
    calls, error = read("[get_weather('Rome', 2, 'extra')]")
    assert calls == [] and "positional argument 3" in error


def test_the_system_prompt_is_bfcls_default_with_the_functions_last():
    functions = [{"name": "kitchen.boil_time", "description": "Minutes.", "parameters": {}}]
    prompt = system_prompt(functions)
    assert prompt.startswith("You are an expert in composing functions.You are given a question")
    assert (
        "If you decide to invoke any of the function(s), you MUST put it in the format of "
        "[func_name1(params_name1=params_value1, params_name2=params_value2...), "
        "func_name2(params)]." in prompt
    )
    tail = "Here is a list of functions in json format that you can invoke.\n"
    assert prompt.endswith(tail + json.dumps(functions, indent=4) + "\n")
    # The item's own system prompt follows BFCL's, in one system message.
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Q"}]
    merged = bfcl_messages(messages, functions)
    assert merged[0] == {"role": "system", "content": prompt + "\n\nYou are terse."}
    assert merged[1:] == [{"role": "user", "content": "Q"}]


def test_a_replayed_conversation_is_plain_text():
    messages = [
        {"role": "user", "content": "Weather in Oslo?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "c0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c0", "content": "Sunny"},
    ]
    history = bfcl_messages(messages, [WEATHER["function"]])[1:]
    assert history[1] == {"role": "assistant", "content": "[get_weather(city='Oslo')]"}
    assert history[2]["role"] == "user" and "'name': 'get_weather'" in history[2]["content"]
    assert "'content': 'Sunny'" in history[2]["content"]


def test_a_bfcl_item_is_asked_with_bfcls_own_function_docs_and_scored(monkeypatch):
    monkeypatch.setattr(bfcl, "data_dir", lambda: FIXTURE)
    boil = bfcl.load_bfcl("simple_python")[0]
    mock = MockProvider(["[kitchen.boil_time(litres=2.0, power_kw=3)]"])
    prediction = asyncio.run(predict_item(mock, "mock", boil, "bfcl"))
    (request,) = mock.requests
    assert request.tools is None
    system = request.messages[0]["content"]
    assert '"name": "kitchen.boil_time"' in system and '"type": "float"' in system
    assert bfcl.PYTHON_NOTE.strip() in system
    assert request.messages[1:] == boil["messages"]
    assert prediction["turns"] == [
        [{"name": "kitchen_boil_time", "arguments": {"litres": 2.0, "power_kw": 3}}]
    ]
    assert score_item(boil, prediction)["full_call"] is True


def test_few_shot_examples_come_from_live_categories_and_never_from_a_scored_question():
    examples = shots(bfcl.data_dir())
    assert [shot["id"].rsplit("_", 1)[0] for shot in examples] == [
        "live_simple",
        "live_parallel",
        "live_irrelevance",
    ]
    assert examples == shots(bfcl.data_dir())  # fixed: the same examples every run
    assert examples[1]["answer"].count("(") == 2 and examples[2]["answer"] == DECLINE
    scored = {
        normalise(q)
        for category in (
            "simple_python",
            "multiple",
            "parallel",
            "parallel_multiple",
            "irrelevance",
        )
        for ref in bfcl.bfcl_references([category])
        for q in ref["questions"]
    }
    assert not {normalise(shot["question"]) for shot in examples} & scored
    prompt = bfcl_messages([{"role": "user", "content": "Q"}], [], fewshot=True)[0]["content"]
    for shot in examples:
        assert f"Question: {shot['question']}\nAnswer: {shot['answer']}" in prompt
    assert prompt.index("Examples") < prompt.index("Here is a list of functions")
    with pytest.raises(UserError, match="evaluate live_simple with --protocol bfcl instead"):
        check_shots_apart(["simple_python", "live_simple"])
    assert set(SHOT_SOURCES) == {"live_simple", "live_parallel", "live_irrelevance"}


def test_eval_asks_in_bfcls_form_from_the_command_line(tmp_path):
    (tmp_path / "mock.yaml").write_text(yaml.safe_dump([DECLINE] * 60))
    out = tmp_path / "base-bfcl"
    done = fcsft(
        "eval",
        "--model",
        f"mock:{tmp_path / 'mock.yaml'}",
        "--bfcl",
        "irrelevance",
        "--protocol",
        "bfcl",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "report.json").read_text())
    assert saved["protocol"] == "bfcl"
    assert saved["layers"]["irrelevance"]["no_call"]["rate"] == 1.0
    done = fcsft(
        "eval",
        "--model",
        f"mock:{tmp_path / 'mock.yaml'}",
        "--bfcl",
        "live_simple",
        "--protocol",
        "bfcl-fewshot",
        "--out",
        str(tmp_path / "no"),
    )
    assert done.returncode == 2 and "evaluate live_simple with --protocol bfcl" in done.stderr


def test_the_bfcl_form_runs_live_in_the_agent_loop():
    class Weather:
        spec = Tool(
            name="get_weather",
            description=WEATHER["function"]["description"],
            parameters=WEATHER["function"]["parameters"],
        )

        async def run(self, arguments):
            return SimpleNamespace(content=f"Sunny in {arguments['city']}", error=False)

    mock = MockProvider(["[get_weather('Oslo')]", "It is sunny in Oslo."])
    trajectory = asyncio.run(
        run_agent(
            mock, "mock", "Weather in Oslo?", {"get_weather": Weather()}, ident="w", protocol="bfcl"
        )
    )
    assert trajectory.meta.stop == "final_answer"
    assert trajectory.steps == [
        ToolCall(name="get_weather", arguments={"city": "Oslo"}, id="call_0"),
        Observation(content="Sunny in Oslo", call_id="call_0"),
        FinalAnswer(text="It is sunny in Oslo."),
    ]
    first, second = mock.requests
    assert first.tools is None and '"name": "get_weather"' in first.messages[0]["content"]
    assert second.messages[2] == {"role": "assistant", "content": "[get_weather(city='Oslo')]"}
    assert second.messages[3]["role"] == "user" and "Sunny in Oslo" in second.messages[3]["content"]
