"""Simulated tools: schema-checked model answers, one retry, and a cache that makes them stable."""

import asyncio
import json

import pytest

from fcsft.errors import UserError
from fcsft.models.base import ChatResponse
from fcsft.records import Tool
from fcsft.tools import SimulatedTool, Toolbox, ToolResult

SPEC = Tool(
    name="get_stock_price",
    description="Latest price of a listed company's stock.",
    parameters={
        "type": "object",
        "properties": {
            "ticker": {"type": "string"},
            "currency": {"type": "string", "enum": ["EUR", "USD"]},
        },
        "required": ["ticker"],
        "additionalProperties": False,
    },
)
RETURNS = {
    "type": "object",
    "properties": {
        "ticker": {"type": "string"},
        "price": {"type": "number"},
        "currency": {"type": "string"},
    },
    "required": ["ticker", "price", "currency"],
}


class ScriptedModel:
    """Answers from a list, in order, and keeps every request."""

    name = "scripted"

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []

    async def chat(self, request):
        self.requests.append(request)
        return ChatResponse(message={"role": "assistant", "content": self.replies.pop(0)})


def call(tool, arguments):
    return asyncio.run(tool.run(arguments))


def test_an_invalid_reply_is_retried_once_and_the_valid_one_is_cached(tmp_path):
    model = ScriptedModel(
        '{"ticker": "ACME", "price": "twelve"}',
        '```json\n{"ticker": "ACME", "price": 12.5, "currency": "EUR"}\n```',
    )
    tool = SimulatedTool(SPEC, RETURNS, model, cache=tmp_path / "observations.sqlite")

    first = call(tool, {"ticker": "ACME", "currency": "EUR"})
    assert first == ToolResult('{"ticker": "ACME", "price": 12.5, "currency": "EUR"}')
    assert len(model.requests) == 2
    retry = model.requests[1].messages[-1]["content"]
    assert retry.startswith("That reply is not valid: it does not match the return schema:")
    assert (
        "price: 'twelve' is not of type 'number'" in retry
        and "'currency' is a required property" in retry
    )
    assert '"ticker": "ACME"' in model.requests[0].messages[-1]["content"]

    again = call(tool, {"currency": "EUR", "ticker": "ACME"})  # same call, keys in another order
    assert again == first
    assert len(model.requests) == 2  # served from the cache

    reopened = SimulatedTool(SPEC, RETURNS, ScriptedModel(), cache=tmp_path / "observations.sqlite")
    assert call(reopened, {"ticker": "ACME", "currency": "EUR"}) == first  # across runs too


def test_two_invalid_replies_give_an_error_that_is_not_cached(tmp_path):
    model = ScriptedModel(
        "the price is 12", "[1, 2]", '{"ticker": "X", "price": 1, "currency": "USD"}'
    )
    tool = SimulatedTool(SPEC, RETURNS, model, cache=tmp_path / "observations.sqlite")
    failed = call(tool, {"ticker": "X"})
    assert failed.error
    assert failed.content.startswith("simulated tool get_stock_price gave no valid result:")
    assert "is not of type 'object'" in failed.content
    assert call(tool, {"ticker": "X"}) == ToolResult(
        '{"ticker": "X", "price": 1, "currency": "USD"}'
    )
    assert len(model.requests) == 3


def test_not_json_is_reported_with_where_it_broke():
    model = ScriptedModel("price: 12", '{"ticker": ')
    result = call(SimulatedTool(SPEC, RETURNS, model), {"ticker": "X"})
    assert result.error and "not JSON" in result.content and "at offset" in result.content


def test_invalid_arguments_never_reach_the_model():
    model = ScriptedModel()
    result = call(SimulatedTool(SPEC, RETURNS, model), {"ticker": "X", "currency": "GBP"})
    assert result.error and "currency: 'GBP' is not one of ['EUR', 'USD']" in result.content
    assert model.requests == []


def test_concurrent_identical_calls_ask_the_model_once():
    model = ScriptedModel('{"ticker": "Y", "price": 3, "currency": "USD"}')
    tool = SimulatedTool(SPEC, RETURNS, model)

    async def scenario():
        return await asyncio.gather(*(tool.run({"ticker": "Y"}) for _ in range(5)))

    results = asyncio.run(scenario())
    assert len({result.content for result in results}) == 1
    assert len(model.requests) == 1


def test_a_changed_return_schema_does_not_reuse_old_answers(tmp_path):
    cache = tmp_path / "observations.sqlite"
    call(
        SimulatedTool(
            SPEC,
            RETURNS,
            ScriptedModel('{"ticker": "Z", "price": 1, "currency": "USD"}'),
            cache=cache,
        ),
        {"ticker": "Z"},
    )
    stricter = dict(
        RETURNS,
        properties={**RETURNS["properties"], "volume": {"type": "integer"}},
        required=[*RETURNS["required"], "volume"],
    )
    model = ScriptedModel('{"ticker": "Z", "price": 1, "currency": "USD", "volume": 10}')
    assert (
        json.loads(
            call(SimulatedTool(SPEC, stricter, model, cache=cache), {"ticker": "Z"}).content
        )["volume"]
        == 10
    )


def test_simulated_tools_from_config(tmp_path):
    model = ScriptedModel('{"ticker": "Q", "price": 7, "currency": "EUR"}')
    entry = {"simulate": SPEC.to_json(), "returns": RETURNS, "model": "teacher"}

    async def scenario():
        async with await Toolbox.open(
            [entry], models={"teacher": model}, cache_dir=tmp_path
        ) as box:
            return await box.run("get_stock_price", {"ticker": "Q"})

    assert asyncio.run(scenario()) == ToolResult('{"ticker": "Q", "price": 7, "currency": "EUR"}')
    assert (tmp_path / "tool_observations.sqlite").exists()
    with pytest.raises(UserError, match="no model with role 'teacher'"):
        asyncio.run(Toolbox.open([entry]))


def test_an_invalid_return_schema_is_a_user_error():
    with pytest.raises(UserError, match="return schema"):
        SimulatedTool(SPEC, {"type": "no-such-type"}, ScriptedModel())
