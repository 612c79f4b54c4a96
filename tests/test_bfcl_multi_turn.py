"""BFCL multi-turn, run live against BFCL's own environments and judged by fcsft's state check
and BFCL's multi_turn_checker: the ground truth passes both, perturbed calls fail both the
way BFCL says."""

import asyncio
import copy
import json

import pytest

from clirun import fcsft
from fcsft.evaluate.multi_turn import (
    ADDED_FUNCTIONS,
    load_multi_turn,
    multi_turn_section,
    official_verdict,
    predict_multi_turn,
)
from fcsft.models.base import ChatResponse

pytest.importorskip("bfcl_eval")


class Replays:
    """Answers each user turn with the given calls, one reply per list of calls, then text."""

    def __init__(self, steps_per_turn):
        self.steps = steps_per_turn

    async def chat(self, request):
        messages = request.messages
        turn = sum(1 for m in messages if m["role"] == "user") - 1
        last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
        replied = sum(1 for m in messages[last_user:] if m["role"] == "assistant")
        steps = self.steps[turn] if turn < len(self.steps) else []
        if replied >= len(steps):
            return ChatResponse(message={"content": "Done."})
        calls = [
            {
                "id": f"c{turn}_{replied}_{k}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for k, c in enumerate(steps[replied])
        ]
        return ChatResponse(message={"content": None, "tool_calls": calls})


def one_call_a_step(item):
    return [[[call] for call in turn] for turn in item["gold"]]


def live(item, steps):
    return asyncio.run(predict_multi_turn(Replays(steps), "replay", item, "native", 256))


def judged(items, predictions):
    return multi_turn_section({item["id"]: item for item in items}, predictions)


@pytest.mark.parametrize(
    "category",
    ["multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context"],
)
def test_replaying_the_ground_truth_scores_every_item(category):
    items = load_multi_turn(category, limit=4, seed=1)
    predictions = [live(item, one_call_a_step(item)) for item in items]
    section = judged(items, predictions)
    assert section["n"] == 4 and section["agree"] == 4, section["disagreements"]
    assert section["success"][category]["fcsft"]["k"] == 4
    assert section["success"][category]["bfcl"]["k"] == 4
    for prediction, item in zip(predictions, items, strict=True):
        assert len(prediction["steps"]) == len(item["questions"])


def test_a_turn_that_adds_functions_says_so_and_shows_them():
    item = next(i for i in load_multi_turn("multi_turn_miss_func", limit=3) if i["held_functions"])
    (names,) = item["held_functions"].values()
    assert not {t["function"]["name"] for t in item["tools"]} & set(names)
    seen = []

    class Watch(Replays):
        async def chat(self, request):
            seen.append(request)
            return await super().chat(request)

    asyncio.run(predict_multi_turn(Watch(one_call_a_step(item)), "m", item, "native", 64))
    added = [r for r in seen if r.messages[-1]["content"] == ADDED_FUNCTIONS]
    assert added and set(names) <= {t["function"]["name"] for t in added[0].tools}
    assert not set(names) & {t["function"]["name"] for t in seen[0].tools}


def _first(items, found):
    for item in items:
        got = found(item)
        if got is not None:
            return item, got
    pytest.fail("no item of the kind the test needs")


def _verdicts(item, steps):
    prediction = live(item, steps)
    theirs, error = official_verdict(item, prediction["steps"])
    return prediction["state_check"]["valid"], theirs, error


@pytest.fixture(scope="module")
def base():
    return load_multi_turn("multi_turn_base", limit=40, seed=3)


def _calling(*names):
    """Finds the (turn, index) of an item's first gold call to one of `names`, or None."""

    def found(item):
        for t, turn in enumerate(item["gold"]):
            for c, call in enumerate(turn):
                if call["name"] in names:
                    return t, c
        return None

    return found


def test_a_wrong_argument_fails_both_checks(base):
    item, (t, c) = _first(base, _calling("mkdir", "touch"))
    steps = one_call_a_step(item)
    wrong = copy.deepcopy(steps)
    key = next(iter(wrong[t][c][0]["arguments"]))
    wrong[t][c][0]["arguments"][key] += "_other"
    ours, theirs, error = _verdicts(item, wrong)
    assert (ours, theirs) == (False, False)
    assert error.startswith("multi_turn:instance_state_mismatch")


def test_a_missing_call_fails_both_checks(base):
    item, (t, c) = _first(base, _calling("mkdir", "touch", "mv", "echo", "rm"))
    steps = one_call_a_step(item)
    del steps[t][c]
    ours, theirs, error = _verdicts(item, steps)
    assert (ours, theirs) == (False, False)
    assert error.startswith("multi_turn:")


def test_calls_in_another_order_fail_where_order_matters(base):
    def cd_then_write(item):
        for t, turn in enumerate(item["gold"]):
            names = [call["name"] for call in turn]
            for c in range(len(names) - 1):
                if names[c] == "cd" and names[c + 1] in ("mkdir", "touch"):
                    return t, c
        return None

    item, (t, c) = _first(base, cd_then_write)
    steps = one_call_a_step(item)
    steps[t][c], steps[t][c + 1] = steps[t][c + 1], steps[t][c]
    ours, theirs, error = _verdicts(item, steps)
    assert (ours, theirs) == (False, False)
    assert error.startswith("multi_turn:instance_state_mismatch")


def test_no_call_where_one_is_needed_fails_both_checks(base):
    item = next(i for i in base if all(i["gold"]))
    steps = one_call_a_step(item)
    steps[0] = []
    ours, theirs, error = _verdicts(item, steps)
    assert (ours, theirs) == (False, False)
    assert error.startswith("multi_turn:empty_turn_model_response")


def test_eval_cli_scores_a_ground_truth_replay_at_100_percent(tmp_path):
    items = load_multi_turn("multi_turn_base", limit=2, split="dev")
    replies = []
    for item in items:
        for turn in item["gold"]:
            replies += [{"content": None, "tool_calls": [call]} for call in turn]
            replies.append("Done.")
    script = tmp_path / "script.json"
    script.write_text(json.dumps(replies))
    done = fcsft(
        "eval", "--model", f"mock:{script}", "--out", tmp_path / "eval",
        "--bfcl", "multi_turn_base", "--bfcl-limit", "2", "--concurrency", "1",
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    success = report["multi_turn"]["success"]["multi_turn_base"]
    assert success["fcsft"]["k"] == success["bfcl"]["k"] == success["bfcl"]["n"] == 2
    assert set(report["multi_turn"]["verdicts"]) == {item["id"] for item in items}
    assert report["layers"]["multi_turn_base"]["full_call"]["n"] == 2
    assert "multi_turn_base task success: fcsft 100.0%" in done.stdout
    assert "BFCL multi-turn: task success" in (tmp_path / "eval" / "report.html").read_text()


def test_a_method_not_yet_shown_runs_as_bfcl_runs_it():
    # BFCL's ground truth of this item calls `tail` two turns before `tail` is shown; BFCL's
    # executor runs any method of the environment, so the replay passes there and here.
    item = next(
        i for i in load_multi_turn("multi_turn_miss_func") if i["id"] == "multi_turn_miss_func_49"
    )
    assert "tail" in item["held_functions"]["3"] and item["gold"][1][1]["name"] == "tail"
    ours, theirs, error = _verdicts(item, one_call_a_step(item))
    assert (ours, theirs) == (True, True), error


def test_an_unreadable_reply_ends_its_turn_and_the_next_turn_goes_on():
    item = next(i for i in load_multi_turn("multi_turn_base", limit=10) if len(i["gold"]) > 1)
    steps = one_call_a_step(item)

    class Garbles(Replays):
        async def chat(self, request):
            if sum(1 for m in request.messages if m["role"] == "user") == 1:
                call = {"id": "bad", "type": "function", "function": {"name": None}}
                return ChatResponse(message={"content": None, "tool_calls": [call]})
            return await super().chat(request)

    prediction = asyncio.run(predict_multi_turn(Garbles(steps), "m", item, "native", 64))
    assert prediction["parse_error"] and prediction["model_error"] is None
    assert len(prediction["steps"]) == len(item["questions"])
    assert prediction["steps"][0] == [] and prediction["steps"][1] == steps[1]
    assert prediction["state_check"]["valid"] is False
    assert official_verdict(item, prediction["steps"])[0] is False
