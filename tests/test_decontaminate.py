"""Decontamination: short questions, near copies, functions, and the general mix, each with
near misses on both sides of the line, and the list of what was removed."""

import json

from fcsft.curate.decontaminate import Contamination, EvalItem
from fcsft.curate.stage import CurateConfig, curate_stage
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.records import FinalAnswer, Meta, Observation, Tool, ToolCall, Trajectory
from fcsft.runner.run import run_stage

EVAL = [
    EvalItem("q-joke", ("Tell me a joke about otters.",)),
    EvalItem("q-capital", ("What is the capital of France?",)),
    EvalItem("q-add", ("What's 2 + 2?",)),
    EvalItem(
        "q-long",
        ("Book a table for four people at an Italian restaurant in Lyon tomorrow at eight.",),
    ),
    EvalItem(
        "q-boil",
        ("Boil some water.",),
        (("kitchen.boil_time", "Minutes to boil water for a given volume and stove power."),),
    ),
]


def index():
    contamination = Contamination()
    contamination.add("heldout", EVAL)
    return contamination


def test_short_questions_are_caught_exactly_and_nearly():
    contamination = index()
    exact = contamination.match("what's 2+2")  # 3 words: never an 8-gram
    assert (exact.id, exact.how, exact.score) == ("q-add", "exact", 1.0)
    near = contamination.match("Tell me a joke about otters please!")
    assert (near.id, near.how) == ("q-joke", "near") and 0.7 <= near.score < 1.0
    assert near.text == "Tell me a joke about otters."
    assert near.reason() == f"near match ({near.score:.2f}) with heldout item q-joke"


def test_a_question_that_only_looks_alike_is_kept():
    contamination = index()
    assert contamination.match("Tell me a joke about cats.") is None
    assert contamination.match("What is the capital of Spain?") is None
    assert contamination.match("What's 2 + 3 + 4?") is None


def test_a_long_question_quoted_inside_another_shares_an_ngram():
    contamination = index()
    text = (
        "My boss asked me to book a table for four people at an Italian restaurant in Lyon "
        "tomorrow, can you help?"
    )
    found = contamination.match(text)
    assert (found.id, found.how) == ("q-long", "ngram")
    assert contamination.match("Book a table for two at a sushi bar in Kyoto tonight.") is None


def test_an_evaluation_items_own_function_is_caught_and_a_namesake_is_not():
    contamination = index()
    same = [
        (
            "Kitchen_Boil_Time",
            "Minutes to boil water for a given volume and stove power. Note that the provided "
            "function is in Python 3 syntax.",
        )
    ]
    found = contamination.match("How long for my pasta water?", same)
    assert (found.id, found.how) == ("q-boil", "function")
    assert found.text.startswith("kitchen.boil_time: Minutes to boil")
    namesake = [("kitchen_boil_time", "Schedule the kettle in the smart-home app.")]
    assert contamination.match("How long for my pasta water?", namesake) is None
    other_name = [("stove_minutes", same[0][1])]
    assert contamination.match("How long for my pasta water?", other_name) is None


def trajectory(ident, question, tools=("search",)):
    return Trajectory(
        id=ident,
        question=question,
        tools=[Tool(name=name, description="Look things up.") for name in tools],
        steps=[
            ToolCall(name=tools[0], arguments={"q": ident}, id="c0"),
            Observation(content="r", call_id="c0"),
            FinalAnswer(text="done"),
        ],
        meta=Meta(task_id=ident, family=ident),
    )


def test_curate_checks_the_general_mix_too_and_lists_every_removal(tmp_path):
    openai = get_format("openai")
    evalset = tmp_path / "heldout.jsonl"
    write_jsonl(
        evalset,
        [
            {"id": "e1", "question": "Tell me a joke about otters."},
            {"id": "e2", "question": "What's the weather in Oslo right now?"},
        ],
    )
    general = tmp_path / "general.jsonl"
    chats = ["tell me a joke about otters", "Describe a rainbow.", "Explain gravity briefly."]
    write_jsonl(
        general,
        [
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": "Sure."},
                ],
                "meta": {"id": f"g{k}"},
            }
            for k, question in enumerate(chats)
        ],
    )
    source = tmp_path / "in.jsonl"
    write_jsonl(
        source,
        [
            openai.render(trajectory("leak", "What's the weather in Oslo right now??")),
            openai.render(trajectory("clean", "What's the weather in Bergen tomorrow morning?")),
        ],
    )
    config = CurateConfig(
        test_share=0.0, general=[general], general_ratio=0.5, decontaminate=[evalset]
    )
    stats = run_stage(curate_stage(config), tmp_path / "run", [source])
    assert stats["reasons"] == {"curate.contaminated": 2}
    decontamination = stats["report"]["decontamination"]
    assert decontamination["hits"] == {"heldout": 2}
    assert decontamination["removed"] == 2 and decontamination["file"] == "contamination.jsonl"
    assert "matches" not in decontamination  # the list is its own file, not in stats.json
    listed = list(read_jsonl(tmp_path / "run" / "curate" / "contamination.jsonl"))
    assert [(row["id"], row["match_id"], row["how"]) for row in listed] == [
        ("leak", "e2", "exact"),
        ("general:g0", "e1", "exact"),
    ]
    assert listed[1]["question"] == "tell me a joke about otters"
    assert listed[1]["match_text"] == "Tell me a joke about otters."
    kept = {row["meta"]["id"] for row in read_jsonl(tmp_path / "run" / "curate" / "out.jsonl")}
    assert "clean" in kept and "leak" not in kept and "general:g0" not in kept
    rejected = [
        json.loads(line) for line in (tmp_path / "run" / "curate" / "rejected.jsonl").open()
    ]
    assert len(rejected) == 2
