"""The agent loop with a scripted model and real (in-process) tools."""

import asyncio
import json
from dataclasses import dataclass

import pytest

from fcsft.agent import Limits, Settings, gold_prompts, live, protocol_named, replay, run_agent
from fcsft.errors import UserError
from fcsft.formats import get_format
from fcsft.formats.openai import tool_json
from fcsft.models.base import ChatRequest, ChatResponse, ModelError
from fcsft.records import FinalAnswer, Observation, Think, Tool, ToolCall


@dataclass
class Result:
    content: str
    error: bool = False


class Adder:
    spec = Tool(
        name="add",
        description="Add two numbers.",
        parameters={
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    )

    async def run(self, arguments):
        try:
            return Result(str(arguments["a"] + arguments["b"]))
        except Exception as exc:  # a failing tool gives an error observation
            return Result(f"{type(exc).__name__}: {exc}", error=True)


class Script:
    """Replies in order and keeps every request it was sent."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests: list[ChatRequest] = []

    async def chat(self, request):
        self.requests.append(request)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        message = {"content": reply} if isinstance(reply, str) else reply
        return ChatResponse(message=message, prompt_tokens=10, completion_tokens=5)


TOOLS = {"add": Adder()}


def run(script, **kwargs):
    return asyncio.run(
        run_agent(script, "scripted", "What is 2+3, then +4?", TOOLS, ident="t1", **kwargs)
    )


def test_tagged_loop_records_every_step_and_ids():
    script = Script(
        '<think>add first</think><tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}'
        "</tool_call>",
        '<tool_call>{"name": "add", "arguments": {"a": 5, "b": 4}}</tool_call>',
        "<final_answer>9</final_answer>",
    )
    trajectory = run(script)
    assert trajectory.steps == [
        Think(text="add first"),
        ToolCall(name="add", arguments={"a": 2, "b": 3}, id="call_0"),
        Observation(content="5", call_id="call_0"),
        ToolCall(name="add", arguments={"a": 5, "b": 4}, id="call_1"),
        Observation(content="9", call_id="call_1"),
        FinalAnswer(text="9"),
    ]
    assert trajectory.meta.stop == "final_answer"
    assert trajectory.meta.usage.prompt_tokens == 30
    # Tools were described in the system prompt; the second request carried the observation.
    assert '"name": "add"' in script.requests[0].messages[0]["content"]
    assert script.requests[1].messages[-1] == {
        "role": "tool",
        "content": "<observation>5</observation>",
    }
    assert script.requests[0].stop == ["<observation"]
    # The trajectory is valid in every format.
    for name in ("tagged", "openai", "sharegpt"):
        fmt = get_format(name)
        assert fmt.parse(json.loads(json.dumps(fmt.render(trajectory)))) == trajectory


def test_native_loop_parallel_calls_and_tool_errors():
    def call(ident, args):
        return {
            "id": ident,
            "type": "function",
            "function": {"name": "add", "arguments": json.dumps(args)},
        }

    script = Script(
        {"content": None, "tool_calls": [call("a", {"a": 1, "b": 1}), call("b", {"a": 1})]},
        {"content": "2, and the second call failed"},
    )
    trajectory = run(script, protocol="native")
    observations = [s for s in trajectory.steps if isinstance(s, Observation)]
    assert [(o.call_id, o.content, o.error) for o in observations] == [
        ("a", "2", False),
        ("b", "KeyError: 'b'", True),
    ]
    assert script.requests[0].tools[0]["function"]["name"] == "add"


def test_unknown_tool_is_an_error_observation_not_a_crash():
    script = Script(
        '<tool_call>{"name": "mul", "arguments": {}}</tool_call>', "<final_answer>?</final_answer>"
    )
    trajectory = run(script)
    assert (
        trajectory.steps[1].error
        and "unknown tool 'mul'; available: add" in trajectory.steps[1].content
    )


def test_stops_on_repeated_identical_call():
    same = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1}}</tool_call>'
    trajectory = run(Script(same, same, same, "<final_answer>2</final_answer>"))
    assert trajectory.meta.stop == "repeated_call"
    assert len(trajectory.calls) == 3 and trajectory.steps[-1] == trajectory.calls[-1]


def test_stops_at_step_limit_and_token_limit():
    calls = [
        f'<tool_call>{{"name": "add", "arguments": {{"a": {i}, "b": 0}}}}</tool_call>'
        for i in range(10)
    ]
    assert run(Script(*calls), limits=Limits(max_steps=3)).meta.stop == "step_limit"
    assert run(Script(*calls), limits=Limits(max_tokens=10)).meta.stop == "token_limit"


def test_parse_failure_and_model_error_are_recorded():
    broken = run(Script('<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>'))
    assert broken.meta.stop == "parse_error"
    assert "bad JSON" in broken.meta.error and broken.meta.raw.startswith("<tool_call>")
    failed = run(Script(ModelError("HTTP 500 after 6 retries")))
    assert failed.meta.stop == "model_error" and failed.steps == []


def test_plain_text_reply_is_a_final_answer():
    trajectory = run(Script("It is 9."))
    assert trajectory.final_answer == "It is 9." and trajectory.meta.stop == "final_answer"


def test_a_reply_the_provider_could_not_read_is_a_parse_error_in_native_mode():
    class Unread(Script):
        async def chat(self, request):
            self.requests.append(request)
            text = '<tool_call>{"name": "add", "arguments": {"a": 1</tool_call>'
            return ChatResponse(
                message={"content": text.strip()},
                extra={"raw": text + "\n", "parse_error": "text: bad JSON"},
            )

    trajectory = run(Unread(), protocol="native")
    assert trajectory.meta.stop == "parse_error" and trajectory.final_answer is None
    assert trajectory.meta.error == "text: bad JSON" and trajectory.meta.raw.endswith("\n")
    nameless = Script({"content": None, "tool_calls": [{"id": "c", "type": "function"}]})
    nameless = run(nameless, protocol="native")
    assert nameless.meta.stop == "parse_error" and nameless.steps == []


def test_usage_of_every_reply_is_added_once_with_its_cost():
    class Priced(Script):
        async def chat(self, request):
            response = await super().chat(request)
            response.extra["cost"] = 0.25
            return response

    script = Priced(
        '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>',
        "<final_answer>5</final_answer>",
    )
    usage = run(script).meta.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost) == (20, 10, 0.5)


def test_replay_asks_each_gold_turn_with_the_gold_history_and_live_asks_the_same_first():
    gold = [
        {"role": "user", "content": "What is 2+3, then +4?"},
        {"role": "assistant", "content": None, "tool_calls": [call_message("g0", 2, 3)]},
        {"role": "tool", "tool_call_id": "g0", "name": "add", "content": "5"},
        {"role": "assistant", "content": None, "tool_calls": [call_message("g1", 5, 4)]},
        {"role": "tool", "tool_call_id": "g1", "name": "add", "content": "9"},
        {"role": "assistant", "content": "9"},
    ]
    # The model's first call is wrong; replay still asks the second turn with the gold result.
    wrong = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 2}}</tool_call>'
    script = Script(wrong, '<tool_call>{"name": "add", "arguments": {"a": 5, "b": 4}}</tool_call>')
    settings = Settings("scripted", 1024)
    tools = [tool_json(Adder.spec)]
    result = asyncio.run(
        replay(script, protocol_named("tagged"), settings, gold_prompts(gold), tools)
    )
    assert result.stop == "gold_end" and len(script.requests) == 2
    assert [reply.calls() for reply in result.replies] == [
        [{"name": "add", "arguments": {"a": 2, "b": 2}}],
        [{"name": "add", "arguments": {"a": 5, "b": 4}}],
    ]
    assert "<observation>5</observation>" in script.requests[1].messages[-1]["content"]
    live_script = Script("<final_answer>9</final_answer>")
    run(live_script)
    assert live_script.requests[0] == script.requests[0]
    stopped = Script("I do not know.", wrong)
    result = asyncio.run(
        replay(stopped, protocol_named("tagged"), settings, gold_prompts(gold), tools)
    )
    assert result.stop == "no_call" and len(stopped.requests) == 1


def call_message(ident, a, b):
    arguments = json.dumps({"a": a, "b": b})
    return {"id": ident, "type": "function", "function": {"name": "add", "arguments": arguments}}


def test_an_unknown_protocol_names_the_known_ones():
    with pytest.raises(UserError, match=r"unknown protocol 'xml'; known: .*native, tagged"):
        protocol_named("xml")


def test_a_live_run_goes_on_from_a_conversation_and_numbers_its_calls_after_the_old_ones():
    earlier = [
        {"role": "user", "content": "What is 2+3?"},
        {"role": "assistant", "content": None, "tool_calls": [call_message("call_0", 2, 3)]},
        {"role": "tool", "tool_call_id": "call_0", "name": "add", "content": "5"},
        {"role": "assistant", "content": "5"},
        {"role": "user", "content": "And plus 4?"},
    ]
    script = Script(
        '<tool_call>{"name": "add", "arguments": {"a": 5, "b": 4}}</tool_call>',
        "<final_answer>9</final_answer>",
    )
    result = asyncio.run(
        live(script, protocol_named("tagged"), Settings("scripted", 64), earlier, TOOLS)
    )
    assert result.stop == "final_answer" and result.messages[: len(earlier)] == earlier
    call, observation, answer = result.messages[len(earlier) :]
    assert call["tool_calls"][0]["id"] == "call_1" and observation["tool_call_id"] == "call_1"
    assert observation["content"] == "9" and answer["content"] == "9"
    assert "And plus 4?" in script.requests[0].messages[-1]["content"]
