"""A conversation of several user turns through every format, the chat rendering, validation,
curation and export, and back unchanged."""

import json

import pytest

from clirun import fcsft_here
from fcsft.formats import get_format
from fcsft.formats.chat import text_messages
from fcsft.jsonl import read_jsonl, write_jsonl
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


def failures(trajectory, **config):
    from fcsft.validate.stage import ValidateConfig, check

    settings = ValidateConfig(**config)
    obj = get_format("openai").render(trajectory)
    return {v.rule: v.reason for v in check(obj, settings, settings.settings())}


def with_steps(steps):
    return three_user_turns().model_copy(update={"steps": steps})


def test_three_user_turns_pass_every_rule():
    assert failures(three_user_turns()) == {}


def test_a_fact_the_user_gave_earlier_grounds_a_later_answer_without_a_call():
    steps = list(three_user_turns().steps)
    # The user never gives the figure: the last answer's 310.4 now comes from nowhere.
    steps[4:6] = [User(text="Thanks."), FinalAnswer(text="You are welcome.")]
    assert failures(with_steps(steps)) == {
        "logic.ungrounded_answer": (
            "user turn 3: number 310.4 appears in no observation or anything the user said"
        )
    }
    # Nor may an answer lean on what the user says only later.
    early = list(three_user_turns().steps)
    early[3] = FinalAnswer(text="Orrin's $1,482.6 million is about 4.8 times your $310.4 million.")
    assert failures(with_steps(early)) == {
        "logic.ungrounded_answer": (
            "user turn 1: number 310.4 appears in no observation or anything the user said; "
            "user turn 1: number 4.8 appears in no observation or anything the user said"
        )
    }


def test_each_user_turn_must_be_answered_and_stay_within_the_step_bound():
    steps = list(three_user_turns().steps)
    del steps[3]  # the search's result, then the user speaks again with no answer given
    assert failures(with_steps(steps)) == {
        "logic.no_final_answer": "user turn 1: the user spoke again before getting an answer"
    }
    # Five assistant steps in all, at most two in any one user turn.
    assert failures(three_user_turns(), max_steps=2) == {}
    assert failures(three_user_turns(), max_steps=1) == {
        "logic.too_many_steps": (
            "user turn 1: 2 assistant steps; at most 1; user turn 3: 2 assistant steps; at most 1"
        )
    }


def twin(ident: str, follow_up: str):
    """The conversation with its last user message asked in other words: the same question
    and calls, a different conversation."""
    steps = list(three_user_turns(ident).steps)
    steps[6] = User(text=follow_up)
    return three_user_turns(ident).model_copy(update={"steps": steps})


def test_three_user_turns_through_validate_curate_and_export_and_back(tmp_path):
    from fcsft.curate.stage import CurateConfig, curate_stage
    from fcsft.export import ExportConfig, export_dataset
    from fcsft.export.card import write_card
    from fcsft.runner.run import run_stage
    from fcsft.validate.stage import ValidateConfig, validate_stage

    openai = get_format("openai")
    wanted = three_user_turns("mt1")
    other = twin("mt2", "Put our figure next to theirs as a percentage, please.")
    leak = twin("mt3", "Which of the two firms had the larger headcount in 2019?")
    source = tmp_path / "generated.jsonl"
    write_jsonl(source, [openai.render(t) for t in (wanted, other, leak)])
    evalset = tmp_path / "heldout.jsonl"
    write_jsonl(
        evalset,
        [{"id": "e1", "question": "which of the two firms had the larger headcount in 2019"}],
    )
    run = tmp_path / "run"
    validated = run_stage(validate_stage(ValidateConfig()), run, [source])
    assert (validated["in"], validated["out"]) == (3, 3)
    config = CurateConfig(test_share=0.0, max_drop=0.0, general_ratio=0.0, decontaminate=[evalset])
    curated = run_stage(curate_stage(config), run, [run / "validate" / "out.jsonl"])
    # Only the last user turns differ: the same first question and calls are no duplicate,
    # and a follow-up that is an evaluation question is a leak.
    assert curated["reasons"] == {"curate.contaminated": 1}
    (match,) = read_jsonl(run / "curate" / "contamination.jsonl")
    assert (match["id"], match["question"], match["match_id"]) == ("mt3", leak.user_turns[2], "e1")
    kept = {r["meta"]["id"]: r for r in read_jsonl(run / "curate" / "out.jsonl")}
    assert sorted(kept) == ["mt1", "mt2"]
    back = openai.parse(kept["mt1"])
    assert back == wanted.model_copy(
        update={"meta": wanted.meta.model_copy(update={"split": "train"})}
    )

    out = run / "export"
    export = export_dataset(
        run / "curate" / "out.jsonl", out, ExportConfig(formats=["openai", "sharegpt"])
    )
    meta = list(read_jsonl(out / "train.meta.jsonl"))
    lines = list(read_jsonl(out / "train.sharegpt.jsonl"))
    sharegpt = get_format("sharegpt")
    assert [sharegpt.parse({**line, "meta": {k: v for k, v in m.items() if k != "line"}})
            for line, m in zip(lines, meta, strict=True)] == [openai.parse(r) for r in kept.values()]  # fmt: skip
    finetune = list(read_jsonl(out / "train.openai.jsonl"))
    assert [sum(m["role"] == "user" for m in r["messages"]) for r in finetune] == [3, 3]

    card = write_card(run, out, {}, "multi", export).read_text()
    section = card.split("## User turns per trajectory", 1)[1].split("\n## ", 1)[0]
    assert "| 3 | 2 | 0 |" in section and "| 1 |" not in section
