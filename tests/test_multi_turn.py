"""A conversation of several user turns through every format, the chat rendering, validation,
curation and export, and back unchanged."""

import json

import pytest

from clirun import fcsft_here
from fcsft.formats import get_format
from fcsft.formats.chat import text_messages
from fcsft.jsonl import write_jsonl
from fcsft.records import FinalAnswer, GrammarError, Think, User, exchanges, turns
from multi_turn import FACT, FOLLOW_UP, QUESTION, three_user_turns

FORMATS = ["tagged", "openai", "sharegpt"]


def through(name, trajectory):
    fmt = get_format(name)
    return fmt.parse(json.loads(json.dumps(fmt.render(trajectory), ensure_ascii=False)))


def test_the_grammar_groups_turns_by_the_user_message_they_answer():
    trajectory = three_user_turns()
    groups = exchanges(turns(trajectory.steps))
    assert [len(group) for group in groups] == [2, 1, 2]
    assert [group[0].user for group in groups] == [None, FACT, FOLLOW_UP]
    assert trajectory.user_turns == [QUESTION, FACT, FOLLOW_UP]
    assert trajectory.final_answer.startswith("Your $310.4 million")


@pytest.mark.parametrize(
    ("steps", "index", "message"),
    [
        ([User(text="b"), FinalAnswer(text="c")], 0, "a user message before any reply"),
        ([FinalAnswer(text="a"), User(text="b")], 1, "a user message with no reply after it"),
        (
            [FinalAnswer(text="a"), User(text="b"), User(text="c"), FinalAnswer(text="d")],
            2,
            "two user messages with no reply between them",
        ),
        ([Think(text="a"), User(text="b")], 1, "a user message after a turn with no calls"),
    ],
)
def test_a_user_message_goes_only_where_a_reply_was_given(steps, index, message):
    with pytest.raises(GrammarError, match=message) as caught:
        turns(steps)
    assert caught.value.index == index


@pytest.mark.parametrize("name", FORMATS)
def test_three_user_turns_through_each_format_and_back(name):
    trajectory = three_user_turns()
    assert through(name, trajectory) == trajectory


def test_the_follow_ups_are_user_messages_and_human_turns():
    trajectory = three_user_turns()
    messages = get_format("openai").render(trajectory)["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == [QUESTION, FACT, FOLLOW_UP]
    roles = [m["role"] for m in messages]
    assert roles[4:8] == ["assistant", "user", "assistant", "user"]
    conversation = get_format("sharegpt").render(trajectory)["conversations"]
    humans = [turn["value"] for turn in conversation if turn["from"] == "human"]
    assert humans == [QUESTION, FACT, FOLLOW_UP]
    text = get_format("tagged").render(trajectory)["text"]
    assert f"<user>{FACT}</user>" in text and f"<user>{FOLLOW_UP}</user>" in text


def test_fine_tuning_format_keeps_the_user_turns_and_drops_only_what_it_has_no_field_for():
    trajectory = three_user_turns()
    back = through("openai-finetune", trajectory)
    assert back.user_turns == trajectory.user_turns
    without_thinking = [s for s in trajectory.steps if not isinstance(s, Think)]
    assert back.steps == without_thinking


def test_single_question_records_render_as_before():
    # The user-turn grammar adds nothing to a record that has no follow-up.
    single = three_user_turns().model_copy(update={"steps": three_user_turns().steps[:4]})
    assert "user" not in get_format("tagged").render(single)["text"]
    messages = get_format("openai").render(single)["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert "user" not in json.dumps(single.to_json()["steps"])


def test_convert_round_trips_three_user_turns(tmp_path, capsys):
    source = tmp_path / "start.openai.jsonl"
    write_jsonl(source, [get_format("openai").render(three_user_turns())])
    current, fmt = source, "openai"
    for target in ["tagged", "sharegpt", "openai"]:
        out = tmp_path / f"{target}.{len(list(tmp_path.iterdir()))}.jsonl"
        result = fcsft_here("convert", current, out, "--from", fmt, "--to", target, capsys=capsys)
        assert result.returncode == 0, result.stderr
        assert "1 converted" in result.stdout
        current, fmt = out, target
    assert current.read_bytes() == source.read_bytes()


def test_chat_rendering_puts_each_follow_up_between_the_turns():
    record = get_format("openai").render(three_user_turns())
    messages = text_messages(record["messages"], record["tools"])
    assert [m["role"] for m in messages] == [
        "system", "user", "assistant", "tool", "assistant",
        "user", "assistant", "user", "assistant", "tool", "assistant",
    ]  # fmt: skip
    assert [m["content"] for m in messages if m["role"] == "user"] == [QUESTION, FACT, FOLLOW_UP]
