"""Predictions: turn-by-turn replay, parse failures apart from no-calls, and one rendering."""

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from clirun import fcsft
from fcsft.evaluate.predict import predict_item, predict_stage, prompts
from fcsft.evaluate.testset import _item
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.models.base import ChatRequest
from fcsft.models.local import Completion, LocalProvider
from fcsft.models.mock import MockProvider
from fcsft.runner.run import run_stage

EXAMPLE = Path(__file__).parents[1] / "examples" / "trajectories" / "finance.openai.jsonl"
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}


def finance_items():
    records = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    return [_item(get_format("openai").parse(r), "standard", "held_out_family") for r in records]


def ask(provider, item, protocol="native"):
    return asyncio.run(predict_item(provider, provider.name, item, protocol))


def test_a_single_turn_item_is_asked_once_and_its_calls_recorded():
    item = {"id": "q1", "layer": "standard", "question": "Add 2 and 3.", "tools": [ADD]}
    mock = MockProvider([{"tool_calls": [{"name": "add", "arguments": {"a": 2, "b": 3}}]}])
    prediction = ask(mock, item)
    assert prediction["turns"] == [[{"name": "add", "arguments": {"a": 2, "b": 3}}]]
    assert prediction["parse_error"] is None and prediction["model_error"] is None
    assert mock.requests[0].tools == [ADD]
    assert mock.requests[0].messages == [{"role": "user", "content": "Add 2 and 3."}]


def test_multi_step_items_are_replayed_with_the_gold_history_up_to_each_turn():
    item = next(i for i in finance_items() if len(i["gold"]) >= 2)
    gold_turns = item["gold"]
    replies = [
        {"tool_calls": [{"name": c["name"], "arguments": c["arguments"]} for c in turn]}
        for turn in gold_turns
    ]
    mock = MockProvider(replies)
    prediction = ask(mock, item)
    assert prediction["turns"] == gold_turns
    assert len(mock.requests) == len(gold_turns) == len(prompts(item))
    for k, request in enumerate(mock.requests):
        assistants = [m for m in request.messages if m["role"] == "assistant"]
        assert len(assistants) == k  # the gold turns before this one, and no more
        assert request.messages[-1]["role"] in ("user", "tool")


def test_replay_stops_at_the_first_turn_without_calls():
    item = next(i for i in finance_items() if len(i["gold"]) >= 2)
    mock = MockProvider(["I think the answer is 42."])
    prediction = ask(mock, item)
    assert prediction["turns"] == [] and prediction["parse_error"] is None
    assert len(mock.requests) == 1


def test_an_unparseable_reply_is_a_parse_failure_not_a_no_call():
    item = {"id": "q1", "question": "Add 2 and 3.", "tools": [ADD]}
    mock = MockProvider(['<tool_call>{"name": "add", "arguments": {"a": 2,</tool_call>'])
    prediction = ask(mock, item, protocol="tagged")
    assert prediction["turns"] == []
    assert prediction["parse_error"]
    assert prediction["raw"] == ['<tool_call>{"name": "add", "arguments": {"a": 2,</tool_call>']


def test_a_failed_request_is_a_model_error_not_an_answer():
    item = {"id": "q1", "question": "Add 2 and 3.", "tools": [ADD]}
    prediction = ask(MockProvider([{"error": "server down"}]), item)
    assert prediction["model_error"] and prediction["parse_error"] is None


class Capture:
    """A local model that records the messages it is given and always calls `search`."""

    def __init__(self):
        self.jobs = []

    def __call__(self, jobs):
        self.jobs.extend(jobs)
        reply = '<tool_call>{"name": "search", "arguments": {"query": "x"}}</tool_call>'
        return [Completion(reply, 10, 5) for _ in jobs]


def test_a_local_model_is_asked_exactly_the_text_it_was_trained_on():
    """The prompt before each turn is the training rendering cut at that assistant span."""
    pytest.importorskip("transformers")
    from fcsft.formats.chat_tokens import segments
    from test_chat_tokens import char_tokenizer

    tokenizer = char_tokenizer()
    records = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    for record, item in zip(records, finance_items(), strict=True):
        capture = Capture()
        ask(LocalProvider("fake", generate=capture), item)
        pieces = segments(tokenizer, record)
        trained_prefixes, text = [], ""
        for piece, is_assistant in pieces:
            if is_assistant:
                trained_prefixes.append(text)
            text += piece
        served = [
            tokenizer.apply_chat_template(job.messages, tokenize=False, add_generation_prompt=True)
            for job in capture.jobs
        ]
        assert served, item["id"]
        assert served == trained_prefixes[: len(served)]


def test_predictions_are_a_resumable_stage(tmp_path):
    items = [
        {"id": f"q{k}", "layer": "standard", "question": f"Add {k} and 1.", "tools": [ADD]}
        for k in range(5)
    ]
    write_jsonl(tmp_path / "items.jsonl", items)
    replies = [
        {"match": f"Add {k} ", "tool_calls": [{"name": "add", "arguments": {"a": k, "b": 1}}]}
        for k in range(5)
    ]
    mock = MockProvider(replies)
    run_stage(predict_stage(mock, "mock"), tmp_path, [tmp_path / "items.jsonl"])
    rows = list(read_jsonl(tmp_path / "predictions" / "out.jsonl"))
    assert [r["id"] for r in rows] == [f"q{k}" for k in range(5)]
    assert [r["turns"][0][0]["arguments"]["a"] for r in rows] == list(range(5))
    again = MockProvider([])  # a finished stage is not asked again
    run_stage(predict_stage(again, "mock"), tmp_path, [tmp_path / "items.jsonl"])
    assert again.requests == []


def test_an_item_the_model_failed_on_is_asked_again_by_the_next_run_and_the_cli_says_so(
    tmp_path,
):
    """A failed request is no answer: `fcsft eval` exits 1 naming how many failed, and the same
    command asks the model only those items again."""
    items = tmp_path / "items.jsonl"
    write_jsonl(
        items,
        [
            {"id": q, "question": f"Add {a} and 3.", "tools": [ADD], "gold": [[]]}
            for q, a in (("q1", 1), ("q2", 2))
        ],
    )
    script = tmp_path / "model.yaml"
    script.write_text(
        '- {match: "Add 1", error: "server down"}\n- {match: "Add 2", content: "5"}\n'
    )
    out = tmp_path / "eval"
    first = fcsft("eval", "--model", f"mock:{script}", "--items", str(items), "--out", str(out))
    assert first.returncode == 1
    assert "ask the model the 1 failed items again" in first.stderr
    script.write_text('- {match: "Add 1", content: "4"}\n')
    second = fcsft("eval", "--model", f"mock:{script}", "--items", str(items), "--out", str(out))
    assert second.returncode == 0, second.stderr
    predictions = {p["id"]: p for p in read_jsonl(out / "predictions" / "out.jsonl")}
    assert sorted(predictions) == ["q1", "q2"]
    assert predictions["q1"]["model_error"] is None and predictions["q1"]["raw"] == ["4"]
    assert predictions["q2"]["raw"] == ["5"]  # kept from the first run, not asked again


def test_fcsft_eval_keeps_several_batches_in_flight_for_a_local_model_so_lengths_are_grouped(
    tmp_path, monkeypatch
):
    """Left unset, the requests in flight to a local model are four of its batches, so its
    batcher picks rows of similar length (less padding); a given --concurrency is kept."""
    from fcsft.evaluate.run import EvalPlan, evaluate
    from fcsft.models import registry

    # Questions of alternating short and long lengths, in item order.
    items = [
        {
            "id": f"q{k:02d}",
            "layer": "standard",
            "question": f"Add {k} and 1." + (" Please be quick about it." * 40 if k % 2 else ""),
            "tools": [ADD],
        }
        for k in range(32)
    ]
    write_jsonl(tmp_path / "items.jsonl", items)

    def run(concurrency):
        batches = []

        def generate(jobs):
            batches.append(sorted(job.size for job in jobs))
            return [Completion("No call.", 10, 3) for _ in jobs]

        provider = LocalProvider("fake", max_batch=4, collect_ms=50, generate=generate)
        monkeypatch.setattr(registry, "load_model", lambda uri, **options: provider)
        plan = EvalPlan(
            model="local:fake",
            out_dir=tmp_path / f"eval-{concurrency}",
            items=[tmp_path / "items.jsonl"],
            concurrency=concurrency,
        )
        evaluate(plan, run_stage)
        return batches

    def mixed(batches):  # batches holding both a short and a long prompt
        return sum(1 for sizes in batches if sizes[-1] - sizes[0] > 500)

    grouped, arrival = run(None), run(4)
    assert sum(map(len, grouped)) == sum(map(len, arrival)) == 32
    assert max(map(len, grouped)) == 4
    assert mixed(arrival) >= 6 and mixed(grouped) <= 2


def test_the_call_bias_reaches_requests_with_tools_and_the_report_records_it(
    tmp_path, monkeypatch, capsys
):
    from clirun import fcsft_here
    from fcsft.evaluate.run import EvalPlan, evaluate
    from fcsft.models import registry

    capture = Capture()
    made = {}

    def local(uri, **options):
        made.update(options)
        return LocalProvider("fake", call_bias=options["call_bias"], generate=capture)

    monkeypatch.setattr(registry, "load_model", local)
    write_jsonl(tmp_path / "items.jsonl", [{"id": "q1", "question": "Add 2.", "tools": [ADD]}])
    plan = EvalPlan(
        model="local:fake", out_dir=tmp_path / "e", items=[tmp_path / "items.jsonl"], call_bias=-1.5
    )
    evaluate(plan, run_stage)
    assert made["call_bias"] == -1.5 and [job.call_bias for job in capture.jobs] == [-1.5]
    assert json.loads((tmp_path / "e" / "report.json").read_text())["call_bias"] == -1.5
    # The same folder asked again with another bias is answered anew, not from the cache.
    evaluate(replace(plan, call_bias=-0.5), run_stage)
    assert [job.call_bias for job in capture.jobs] == [-1.5, -0.5]
    assert json.loads((tmp_path / "e" / "report.json").read_text())["call_bias"] == -0.5
    # A request without tools is plain chat: no choice between calling and answering.
    provider = LocalProvider("fake", call_bias=-1.5, generate=capture)
    asyncio.run(
        provider.chat(ChatRequest(model="fake", messages=[{"role": "user", "content": "Hi"}]))
    )
    assert capture.jobs[-1].call_bias == 0.0

    # An API model has no logits to bias: one line, exit 2, nothing written.
    monkeypatch.undo()
    result = fcsft_here(
        "eval", "--model", "mock:x.yaml", "--items", tmp_path / "items.jsonl",
        "--call-bias", "-1", "--out", tmp_path / "api", capsys=capsys,
    )  # fmt: skip
    assert result.returncode == 2 and "--call-bias: mock:x.yaml is not a local model" in (
        result.stderr
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_model_retrained_into_the_same_folder_is_asked_again_not_served_old_answers(tmp_path):
    """Predictions and cached replies are recorded under the weights' digest, not the path alone:
    a run that trains a new model into the folder it evaluated before must score the new one."""
    pytest.importorskip("transformers")
    from fcsft.evaluate.run import EvalPlan, evaluate
    from test_chat_tokens import char_tokenizer
    from tiny_llama import tiny_llama

    tokenizer = char_tokenizer()
    tokenizer.eos_token = "<|im_end|>"
    folder = tmp_path / "model"
    items = [{"id": f"q{k}", "question": f"Add {k} and 1."} for k in range(3)]
    write_jsonl(tmp_path / "items.jsonl", items)

    def answers(seed, out):
        model = tiny_llama(
            vocab=len(tokenizer),
            seed=seed,
            max_position_embeddings=2048,
            eos_token_id=2,
            pad_token_id=0,
        )
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        plan = EvalPlan(
            model=f"local:{folder}",
            out_dir=out,
            items=[tmp_path / "items.jsonl"],
            max_tokens=12,
            precision="fp32",
            mmlu=8,
        )
        evaluate(plan, run_stage)
        predictions = list(read_jsonl(out / "predictions" / "out.jsonl"))
        assert not any(p["model_error"] for p in predictions)
        return [p["raw"] for p in predictions], (out / "mmlu.jsonl").read_text()

    first = answers(0, tmp_path / "e")
    again = answers(1, tmp_path / "e")  # another model in the same folder, the same OUT
    fresh = answers(1, tmp_path / "fresh")
    assert again == fresh and again != first


def test_a_bias_sweep_sharing_a_cache_generates_only_the_replies_the_bias_flips(
    tmp_path, monkeypatch
):
    """A greedy reply recorded at bias 0 with its call margin is the reply under a bias that
    leaves the margin's sign as it is; with --replies shared, the biased evaluation asks the
    model only the rest, and scores exactly as one asked afresh."""
    from fcsft.evaluate.run import EvalPlan, evaluate
    from fcsft.models import registry

    margins = {"q0": 2.0, "q1": 0.5, "q2": -0.7, "q3": None}  # None: never at the choice
    call = '<tool_call>{"name": "add", "arguments": {"a": 1, "b": 2}}</tool_call>'
    asked = []

    def generate(jobs):
        replies = []
        for job in jobs:
            ident = job.messages[-1]["content"].split()[0]
            asked.append((ident, job.call_bias))
            margin = margins[ident]
            calls = margin is not None and margin + job.call_bias > 0
            replies.append(Completion(call if calls else "No call.", 10, 5, call_margin=margin))
        return replies

    monkeypatch.setattr(
        registry,
        "load_model",
        lambda uri, **o: LocalProvider("fake", call_bias=o["call_bias"], generate=generate),
    )
    items = [{"id": q, "question": f"{q} adds 1 and 2.", "tools": [ADD]} for q in margins]
    write_jsonl(tmp_path / "items.jsonl", items)

    def run(bias, out, replies=None):
        plan = EvalPlan(
            model="local:fake",
            out_dir=tmp_path / out,
            items=[tmp_path / "items.jsonl"],
            call_bias=bias,
            replies=replies,
        )
        evaluate(plan, run_stage)
        return [p["turns"] for p in read_jsonl(tmp_path / out / "predictions" / "out.jsonl")]

    shared = tmp_path / "sweep.sqlite"
    at_zero = run(0.0, "b0", shared)
    asked.clear()
    swept = run(-1.0, "b-1", shared)
    assert asked == [("q1", -1.0)]  # 0.5 - 1 flips; 2.0 - 1 and -0.7 - 1 keep their side
    asked.clear()
    assert swept == run(-1.0, "fresh") and len(asked) == 4
    assert swept != at_zero
