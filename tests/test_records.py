import re

import pytest
from pydantic import ValidationError

from fcsft.errors import UserError, require
from fcsft.records import (
    Call,
    FinalAnswer,
    GrammarError,
    Observation,
    Seed,
    Task,
    Think,
    ToolCall,
    Trajectory,
    Verdict,
    turns,
)


def test_seed_task_verdict_round_trip():
    seed = Seed(
        id="s1",
        question="Revenue of ACME?",
        source="expert",
        domain="finance",
        plan=[Call(name="search", arguments={"query": "ACME revenue"})],
        tags=["multi_hop"],
    )
    task = Task(
        id="s1-v1",
        question="Revenue of Orrin?",
        family="s1",
        how="vary",
        parents=["s1"],
        tools=["search"],
        plan=[Call(name="search", arguments={"query": "Orrin revenue"})],
    )
    verdict = Verdict(stage="validate", rule="format.unknown_tool", passed=False, reason="no 'x'")
    for record in (seed, task, verdict):
        assert type(record).from_json(record.to_json()) == record
    assert Seed(id="s2", question="2+2?", tags=["no_tool"]).no_tool


def test_unknown_fields_are_refused():
    with pytest.raises(ValidationError, match="question"):
        Seed(id="s1", questoin="typo")


def call(ident):
    return ToolCall(name="f", id=ident)


def obs(ident):
    return Observation(content="r", call_id=ident)


@pytest.mark.parametrize(
    ("steps", "index", "message"),
    [
        ([obs("a")], 0, "no tool call left"),
        ([call("a"), FinalAnswer(text="x")], 1, "1 tool call(s) answered by 0"),
        ([call("a"), call("b"), obs("b"), obs("a")], 2, "answers call 'b' but 'a' is next"),
        ([Think(text="a"), Think(text="b")], 1, "two thinking blocks"),
        ([FinalAnswer(text="x"), Think(text="y")], 1, "steps after the final answer"),
        ([call("a"), obs("a"), call("a"), obs("a")], 0, "share one id"),
    ],
)
def test_grammar_names_the_step(steps, index, message):
    with pytest.raises(GrammarError, match=re.escape(message)) as caught:
        turns(steps)
    assert caught.value.index == index
    with pytest.raises(ValidationError):
        Trajectory(id="t", question="q", steps=steps)


def test_cut_off_trajectory_is_allowed():
    steps = [Think(text="go"), call("a"), call("b"), obs("a"), obs("b"), call("c")]
    found = turns(steps)
    assert [len(t.calls) for t in found] == [2, 1] and found[-1].observations == []


def test_missing_extra_names_the_install():
    with pytest.raises(UserError, match=r"pip install 'fcsft\[local\]'"):
        require("surely_not_installed_module", "local")
