"""Data a user brings in OpenAI's fine-tuning format: text beside calls and per-message weights
survive every format and `fcsft convert`, and a weight of 0 keeps a turn out of the loss."""

import itertools
import json

import pytest

from clirun import fcsft
from fcsft.formats import FormatError, get_format
from fcsft.records import FinalAnswer, Say, Think, ToolCall, Trajectory

SEARCH = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the filings.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}},
            "required": ["query"],
        },
    },
}


def call(ident: str, query: str) -> dict:
    arguments = json.dumps({"query": query})
    return {"id": ident, "type": "function", "function": {"name": "search", "arguments": arguments}}


USER_LINE = {
    "messages": [
        {"role": "system", "content": "You answer questions about listed companies."},
        {"role": "user", "content": "Orrin Dynamics' Q2 revenue and Vellum Bank's last close?"},
        {
            "role": "assistant",
            "content": "I'll look both up.",
            "tool_calls": [call("call_a", "Orrin Dynamics Q2 revenue"), call("call_b", "Vellum")],
            "weight": 0,
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "Q2 revenue: 187.9 ($m)"},
        {"role": "tool", "tool_call_id": "call_b", "content": "Vellum Bank closed at 41.20"},
        {
            "role": "assistant",
            "content": "Orrin Dynamics made $187.9m in Q2; Vellum Bank closed at 41.20.",
            "weight": 1,
        },
    ],
    "tools": [SEARCH],
}


def test_convert_keeps_text_beside_calls_and_weights_through_every_format(tmp_path):
    current = tmp_path / "user.jsonl"
    current.write_text(json.dumps(USER_LINE) + "\n")
    chain = ["openai", "sharegpt", "tagged", "openai", "openai-finetune"]
    for source, target in itertools.pairwise(chain):
        out = tmp_path / f"{target}.jsonl"
        result = fcsft("convert", current, out, "--from", source, "--to", target)
        assert result.returncode == 0, result.stderr
        current = out
        if target == "openai":
            [line] = [json.loads(text) for text in out.read_text().splitlines()]
            first = line["messages"][2]
            # Visible text stays visible: not turned into thinking with content null.
            assert first["content"] == "I'll look both up." and "reasoning_content" not in first
            assert [m.get("weight") for m in line["messages"] if m["role"] == "assistant"] == [0, 1]
    assert [json.loads(text) for text in current.read_text().splitlines()] == [USER_LINE]


def test_each_format_carries_what_the_user_wrote():
    trajectory = get_format("openai").parse(USER_LINE)
    assert trajectory.weights == [0, 1]
    assert [type(step) for step in trajectory.steps[:2]] == [Say, ToolCall]
    tagged = get_format("tagged").render(trajectory)
    assert tagged["weights"] == [0, 1]
    assert tagged["text"].startswith("I'll look both up.\n<tool_call>")
    sharegpt = get_format("sharegpt").render(trajectory)
    function_call, observation, answer = sharegpt["conversations"][1:]
    assert function_call["content"] == "I'll look both up." and function_call["weight"] == 0
    assert observation["value"] == (
        "Q2 revenue: 187.9 ($m)\n</tool_response>\n<tool_response>\nVellum Bank closed at 41.20"
    )
    assert answer["weight"] == 1


def test_text_beside_calls_needs_calls_and_weights_need_their_turns():
    with pytest.raises(ValueError, match="must be followed by a tool call"):
        Trajectory(id="a", question="q", steps=[Say(text="hello"), FinalAnswer(text="x")])
    with pytest.raises(ValueError, match="must be followed by a tool call"):
        Trajectory(id="a", question="q", steps=[Think(text="t"), Say(text="hello")])
    with pytest.raises(ValueError, match="weights has 2 entries for 1 assistant turns"):
        Trajectory(id="a", question="q", steps=[FinalAnswer(text="x")], weights=[1, 0])
    bad = json.loads(json.dumps(USER_LINE))
    bad["messages"][2]["weight"] = 2
    with pytest.raises(FormatError, match=r"messages\.2\.weight: must be 0 or 1, got 2"):
        get_format("openai").parse(bad)


def test_a_turn_of_weight_0_is_context_not_trained_on():
    from fcsft.formats.chat_tokens import segments
    from test_chat_tokens import char_tokenizer

    record = get_format("openai").render(get_format("openai").parse(USER_LINE))
    pieces = segments(char_tokenizer(), record)
    trained = "".join(text for text, marked in pieces if marked)
    shown = "".join(text for text, _ in pieces)
    assert "I'll look both up." in shown and "I'll look both up." not in trained
    assert trained == (
        "<final_answer>Orrin Dynamics made $187.9m in Q2; Vellum Bank closed at 41.20."
        "</final_answer><|im_end|>\n"
    )
