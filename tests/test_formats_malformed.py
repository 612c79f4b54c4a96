"""Every way a teacher breaks the tagged format gets its own error, with line and offset."""

import json
from pathlib import Path

import pytest

from fcsft.convert import convert_file
from fcsft.formats import FormatError, get_format
from fcsft.formats.tagged import parse_reply, parse_text

CORPUS = Path(__file__).parent / "data" / "malformed_tagged.jsonl"

EXPECTED = {
    2: "text at offset 0: <think> is never closed",
    3: "text at offset 126: <final_answer> is never closed",
    4: "text at offset 55: bad JSON in <tool_call>: Expecting ',' delimiter",
    5: "text at offset 11: tool call name must be a non-empty string, got int",
    6: "text at offset 11: arguments must be a JSON object, got list",
    7: "text at offset 158: text after </final_answer>: 'and also this'",
    8: "text at offset 0: <observation> with no tool call left to answer",
    9: "text at offset 58: 1 tool call(s) answered by 0 observation(s)",
    10: "text at offset 16: two thinking blocks in a row",
    11: "text at offset 11: tool call has unexpected keys ['args']; allowed: name, arguments, id",
    13: "not valid JSON at offset 27: Expecting property name enclosed in double quotes",
}


def test_corpus_each_line_reports_its_own_error(tmp_path):
    result = convert_file(CORPUS, tmp_path / "out.jsonl", "tagged", "openai")
    assert result.written == 2  # the good line and the tolerated fenced one
    assert result.problems == [f"{CORPUS}:{line}: {message}" for line, message in EXPECTED.items()]
    rejected = [json.loads(line) for line in (tmp_path / "out.rejected.jsonl").open()]
    assert [r["line"] for r in rejected] == list(EXPECTED)
    assert all(r["input"] for r in rejected)  # the original text is kept, nothing is lost


def test_tolerated_input_keeps_the_call():
    steps = parse_text(
        '<tool_call>\n```json\n{"name": "s", "arguments": {"q": [1, 2,],},}\n```\n</tool_call>'
    )
    assert steps[0].name == "s" and steps[0].arguments == {"q": [1, 2]}


def test_arguments_as_json_string_are_accepted():
    steps = parse_text('<tool_call>{"name": "s", "arguments": "{\\"q\\": 1}"}</tool_call>')
    assert steps[0].arguments == {"q": 1}


def test_a_comma_inside_a_string_is_not_touched():
    steps = parse_text('<tool_call>{"name": "s", "arguments": {"q": "a,}"},}</tool_call>')
    assert steps[0].arguments == {"q": "a,}"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('<tool_call>{"name": "s"  "arguments": {}}</tool_call>', "offset 25"),
        ("<tool_call>[1]</tool_call>", "must be a JSON object, got list"),
        ('<tool_call>{"name": "", "arguments": {}}</tool_call>', "non-empty string"),
        ('<tool_call>{"name": "s", "arguments": {}, "id": 3}</tool_call>', "id must be a string"),
        ("hello <final_answer>x</final_answer>", "text outside any tag: 'hello"),
        # Untagged text is what the assistant shows beside calls: only before a turn's calls.
        ('<tool_call>{"name": "s"}</tool_call> hi', "text outside any tag: 'hi"),
        (
            '<tool_call>{"name": "s"}</tool_call>hi<tool_call>{"name": "t"}</tool_call>',
            r"offset 36: 1 tool call\(s\) answered by 0 observation\(s\)",
        ),
        ("<think>a<final_answer>b</final_answer></think>", "contains <final_answer>"),
        ("<user>b</user><final_answer>c</final_answer>", "offset 0: a user message before any"),
        ("<final_answer>a</final_answer>\n<user> </user>", "offset 31: an empty <user> message"),
        (
            "<final_answer>a</final_answer><user>b</user>",
            "offset 30: a user message with no reply after it",
        ),
        (
            '<tool_call>{"name": "s"}</tool_call><user>b</user><final_answer>c</final_answer>',
            r"offset 36: 1 tool call\(s\) answered by 0",
        ),
        (
            "<think>a</think><user>b</user><final_answer>c</final_answer>",
            "offset 16: a user message after a turn with no calls or answer",
        ),
        ("<final_answer>a<user>b</user></final_answer>", "contains <user>"),
    ],
)
def test_more_malformed_text(text, message):
    with pytest.raises(FormatError, match=message):
        parse_text(text)


def test_reply_without_tags_is_a_plain_answer():
    assert parse_reply("  Paris.  ") == {"role": "assistant", "content": "Paris."}


def test_reply_with_calls_becomes_an_openai_message():
    message = parse_reply(
        '<think>look</think><tool_call>{"name": "s", "arguments": {"q": 1}}</tool_call>'
    )
    assert message["reasoning_content"] == "look"
    assert message["content"] is None
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"q": 1}


def test_reply_may_not_invent_observations():
    with pytest.raises(FormatError, match="may not contain <observation>"):
        parse_reply('<tool_call>{"name": "s"}</tool_call><observation>made up</observation>')


def test_reply_may_not_speak_for_the_user():
    with pytest.raises(FormatError, match="offset 30: a reply may not contain <user>"):
        parse_reply("<final_answer>a</final_answer><user>and?</user><final_answer>b</final_answer>")


@pytest.mark.parametrize(
    ("name", "obj", "message"),
    [
        (
            "openai",
            {"messages": [{"role": "assistant", "content": "x"}]},
            "messages.0: an assistant message before the user's question",
        ),
        (
            "openai",
            {"messages": [{"role": "user", "content": "q"}, {"role": "tool", "content": "x"}]},
            "messages.1: a tool result with no tool call before it",
        ),
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "a", "function": {"name": "s", "arguments": "{bad"}}],
                    },
                ]
            },
            "messages.1.tool_calls.0.function.arguments: arguments are not valid JSON",
        ),
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "a", "function": {"name": "s", "arguments": "{}"}}],
                    },
                    {"role": "tool", "tool_call_id": "b", "content": "x"},
                ]
            },
            "messages.2: tool_call_id 'b' answers no waiting call",
        ),
        (
            "openai",
            {"messages": [{"role": "user", "content": "q"}, {"role": "user", "content": "q"}]},
            "messages.1: two user messages with no assistant reply between them",
        ),
        (
            "openai",
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {"role": "assistant", "content": "a"},
                    {"role": "user", "content": "  "},
                    {"role": "assistant", "content": "b"},
                ]
            },
            "messages.2: an empty user message after the question",
        ),
        (
            "sharegpt",
            {
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "gpt", "value": "a"},
                    {"from": "human", "value": "more"},
                    {"from": "human", "value": "and more"},
                    {"from": "gpt", "value": "b"},
                ]
            },
            "conversations.3: two user messages with no assistant reply between them",
        ),
        (
            "sharegpt",
            {
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "function_call", "value": "{oops"},
                ]
            },
            "conversations.1.value at offset 1: bad JSON in function_call",
        ),
        (
            "sharegpt",
            {
                "conversations": [
                    {"from": "human", "value": "q"},
                    {"from": "function_call", "value": '[{"name": "a"}, {"name": "b"}]'},
                    {"from": "observation", "value": "only one"},
                ]
            },
            "conversations.2: 2 parallel calls but 1 results; results are joined with",
        ),
        (
            "sharegpt",
            {"conversations": [{"from": "gpt", "value": "hi"}]},
            "conversations.0: a 'gpt' turn before the human question",
        ),
    ],
)
def test_structured_formats_name_the_field(name, obj, message):
    with pytest.raises(FormatError) as caught:
        get_format(name).parse(obj)
    assert str(caught.value).startswith(message)


def test_a_reply_the_model_wrote_with_stray_tags_is_shown_to_it_as_written():
    """BFCL's multi-turn runs keep an unreadable reply in the history and go on to the next
    turn: the next prompt must show it as the model wrote it rather than fail to render."""
    from fcsft.formats.chat import text_messages

    stray = "I will list files <final_answer>done"
    messages = [
        {"role": "user", "content": "List the files."},
        {"role": "assistant", "content": stray},
        {"role": "user", "content": "And now?"},
    ]
    assert text_messages(messages, None)[1] == {"role": "assistant", "content": stray}
    # A clean reply is still wrapped as an answer, and markup beside a call is still refused.
    clean = text_messages([{"role": "assistant", "content": "Done."}], None)
    assert clean == [{"role": "assistant", "content": "<final_answer>Done.</final_answer>"}]
    call = {"id": "c", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
    with pytest.raises(FormatError):
        text_messages([{"role": "assistant", "content": stray, "tool_calls": [call]}], None)
