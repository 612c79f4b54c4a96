"""The scripted `mock:` model: order, matching, tool calls, errors, and script files."""

import asyncio
import json
import re

import pytest

from fcsft.agent import run_agent
from fcsft.errors import UserError
from fcsft.models.base import ChatRequest, ModelError
from fcsft.models.cache import ResponseCache
from fcsft.models.client import Client
from fcsft.models.mock import MockProvider
from fcsft.models.registry import load_model
from fcsft.records import Tool


def ask(text: str) -> ChatRequest:
    return ChatRequest(model="mock", messages=[{"role": "user", "content": text}])


def replies_to(model, *questions):
    async def go():
        return [await model.chat(ask(q)) for q in questions]

    return asyncio.run(go())


def test_replies_come_in_order_and_requests_are_kept():
    model = MockProvider(["first", "second"])
    first, second = replies_to(model, "a", "b")
    assert first.message == {"role": "assistant", "content": "first"}
    assert second.message["content"] == "second"
    assert [r.messages[0]["content"] for r in model.requests] == ["a", "b"]
    assert model.remaining == 0


def test_a_matched_reply_waits_for_its_question():
    model = MockProvider([{"match": "weather", "content": "Sunny."}, "anything else"])
    other, weather = replies_to(model, "hello", "the weather in Paris?")
    assert other.message["content"] == "anything else"
    assert weather.message["content"] == "Sunny."


def test_short_tool_calls_become_the_openai_shape():
    model = MockProvider(
        [{"reasoning_content": "Add them.", "tool_calls": [{"name": "add", "arguments": {"a": 1}}]}]
    )
    (reply,) = replies_to(model, "1+?")
    assert reply.message == {
        "role": "assistant",
        "content": None,
        "reasoning_content": "Add them.",
        "tool_calls": [
            {
                "id": "call_0_0",
                "type": "function",
                "function": {"name": "add", "arguments": '{"a": 1}'},
            }
        ],
    }
    assert reply.finish_reason == "tool_calls"
    assert reply.completion_tokens == 2


def test_scripted_errors_and_an_empty_script_are_model_errors():
    model = MockProvider([{"error": "rate limited"}])
    with pytest.raises(ModelError, match="rate limited"):
        replies_to(model, "a")
    with pytest.raises(ModelError, match="no scripted reply left for 'b'"):
        replies_to(model, "b")


def test_a_script_file_in_yaml_or_json(tmp_path):
    yaml_file = tmp_path / "replies.yaml"
    yaml_file.write_text(
        "- Hello there.\n- match: sum\n  tool_calls:\n    - {name: add, arguments: {a: 2, b: 3}}\n"
    )
    json_file = tmp_path / "replies.json"
    json_file.write_text(json.dumps(["from json"]))
    from_yaml = load_model(f"mock:{yaml_file}", api_key_env="IGNORED", timeout_s=5)
    hello, call = replies_to(from_yaml, "hi", "the sum please")
    assert hello.message["content"] == "Hello there."
    assert call.message["tool_calls"][0]["function"]["arguments"] == '{"a": 2, "b": 3}'
    (reply,) = replies_to(load_model(f"mock:{json_file}"), "x")
    assert reply.message["content"] == "from json"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- ok\n- {contnet: typo}\n", "reply 1: unknown key(s) contnet"),
        ("reply: not a list\n", "expected a list of replies, got dict"),
        ("- [unclosed\n", "not valid yaml"),
        ("- tool_calls: [{arguments: {}}]\n", "reply 0.tool_calls[0]: a tool call needs a name"),
    ],
)
def test_a_bad_script_says_where_and_what(tmp_path, text, problem):
    path = tmp_path / "replies.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=re.escape(problem)):
        load_model(f"mock:{path}")


def test_a_missing_script_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read the script"):
        load_model(f"mock:{tmp_path / 'nope.yaml'}")


def test_the_mock_drives_the_agent_through_the_client(tmp_path):
    class Adder:
        spec = Tool(name="add", description="Add.", parameters={"type": "object"})

        async def run(self, arguments):
            class Result:
                content = str(arguments["a"] + arguments["b"])
                error = False

            return Result()

    script = [
        {"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]},
        "It is 5.",
    ]

    async def go(cache):
        client = Client(MockProvider(script), cache=cache)
        trajectory = await run_agent(
            client, "mock", "2+3?", {"add": Adder()}, ident="t", protocol="native"
        )
        await client.close()
        return trajectory, client.totals()

    with ResponseCache(tmp_path / "cache.sqlite") as cache:
        first, paid = asyncio.run(go(cache))
        again, free = asyncio.run(go(cache))  # a fresh script, but every reply is cached
    assert first.meta.model_extra["stop"] == "final_answer"
    assert first.calls[0].arguments == {"a": 2, "b": 3}
    assert again.steps == first.steps
    assert (paid.requests, paid.cached, free.requests, free.cached) == (2, 0, 2, 2)
