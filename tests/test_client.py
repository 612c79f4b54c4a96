"""The model client against a real OpenAI-compatible server on 127.0.0.1, faults and all."""

import asyncio
import copy
import gc
import hashlib
import json
import multiprocessing
import pickle
import sqlite3
import subprocess
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from fcsft.agent import run_agent
from fcsft.errors import UserError
from fcsft.models import cache as cache_module
from fcsft.models.base import ChatRequest, ChatResponse, ModelError, ModelUnavailable
from fcsft.models.cache import CarriedReplies, ResponseCache
from fcsft.models.client import Client, Counters, cache_key
from fcsft.models.openai import OpenAIProvider, retry_after_seconds
from fcsft.models.registry import load_model
from fcsft.records import Tool
from fcsft.testing.fake_openai import FakeOpenAI, Faults, tool_call

PRICES = {"m": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}}


def ask(text: str, **fields) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}], **fields)


def provider(server: FakeOpenAI, **options) -> OpenAIProvider:
    options = {"backoff_s": 0.001, "max_retries": 3} | options
    return OpenAIProvider("m", server.base_url, **options)


def billed_cost(prompt_tokens: int, completion_tokens: int) -> float:
    return (prompt_tokens * 1.0 + completion_tokens * 2.0) / 1e6


# ---------------------------------------------------------------- the openai provider


def test_a_reply_carries_tool_calls_reasoning_and_usage():
    def reply(body):
        assert body["tools"][0]["function"]["name"] == "add"
        return {
            "content": None,
            "reasoning_content": "I should add.",
            "tool_calls": [tool_call("add", {"a": 1, "b": 2})],
        }

    async def go():
        async with FakeOpenAI(reply=reply) as server:
            model = provider(server)
            tools = [{"type": "function", "function": {"name": "add", "parameters": {}}}]
            response = await model.chat(ask("1+2?", tools=tools))
            await model.close()
            return response, server.stats()

    response, stats = asyncio.run(go())
    assert response.message["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": '{"a": 1, "b": 2}',
    }
    assert response.message["reasoning_content"] == "I should add."
    assert response.finish_reason == "tool_calls"
    assert (response.prompt_tokens, response.completion_tokens) == (
        stats["prompt_tokens"],
        stats["completion_tokens"],
    )
    assert response.extra == {"id": "chatcmpl-1", "attempts": 1}


def test_latency_is_waited_for_concurrently():
    async def go():
        async with FakeOpenAI(Faults(latency_s=0.05)) as server:
            client = Client(provider(server), concurrency=8)
            started = time.monotonic()
            await asyncio.gather(*(client.chat(ask(f"q{i}")) for i in range(8)))
            wall = time.monotonic() - started
            await client.close()
            return wall

    wall = asyncio.run(go())
    assert 0.05 <= wall < 0.3  # eight 50 ms answers at once, not one after another (0.4 s)


def test_429_waits_as_long_as_retry_after_says():
    async def go():
        async with FakeOpenAI(Faults(first_attempts=["429"], retry_after="1")) as server:
            model = provider(server)
            started = time.monotonic()
            response = await model.chat(ask("hello"))
            await model.close()
            return time.monotonic() - started, response, server.stats()

    wall, response, stats = asyncio.run(go())
    assert wall >= 1.0  # the backoff alone would have waited 1 ms
    assert wall < 2.0
    assert response.extra["attempts"] == 2
    assert stats["received"] == 2 and stats["answered"] == 1


def test_retry_after_accepts_seconds_dates_and_milliseconds():
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    past = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds("7") == 7.0
    assert 28 <= retry_after_seconds(soon) <= 30
    assert retry_after_seconds(past) == 0.0
    assert retry_after_seconds("1", "250") == 0.25
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize("fault", ["429", "500", "drop", "malformed"])
def test_a_failed_attempt_is_retried_and_billed_once(fault):
    async def go():
        faults = Faults(first_attempts=[fault, fault], retry_after="0")
        async with FakeOpenAI(faults) as server:
            client = Client(provider(server), prices=PRICES)
            response = await client.chat(ask("hello"))
            await client.close()
            return response, client.totals(), server.stats()

    response, totals, stats = asyncio.run(go())
    assert response.message["content"] == "echo: hello"
    assert response.extra["attempts"] == 3
    assert stats["received"] == 3 and stats["failed"] == {fault: 2} and stats["answered"] == 1
    assert totals.prompt_tokens == stats["prompt_tokens"]
    assert totals.completion_tokens == stats["completion_tokens"]
    assert totals.cost == pytest.approx(
        billed_cost(stats["prompt_tokens"], stats["completion_tokens"])
    )
    assert response.extra["cost"] == totals.cost


def test_giving_up_is_a_readable_counted_error():
    async def go():
        async with FakeOpenAI(Faults(first_attempts=["500"] * 3)) as server:
            client = Client(provider(server, max_retries=2), prices=PRICES)
            outcome = await client.try_chat(ask("hello"))
            with pytest.raises(ModelError, match="gave up after 3 attempts"):
                await client.for_stage("other").chat(ask("hello again"))
            await client.close()
            return outcome, client, server.stats()

    outcome, client, stats = asyncio.run(go())
    assert isinstance(outcome, ModelError)
    assert "gave up after 3 attempts; last: HTTP 500: The server had an error" in str(outcome)
    assert client.counters().errors == 1 and client.counters().cost == 0.0
    assert client.counters("other").errors == 1
    assert stats["received"] == 6 and stats["answered"] == 0


def test_a_timeout_is_retried_then_reported():
    async def go():
        async with FakeOpenAI(Faults(latency_s=0.4)) as server:
            model = provider(server, timeout_s=0.1, max_retries=1)
            started = time.monotonic()
            with pytest.raises(ModelError) as caught:
                await model.chat(ask("slow"))
            await model.close()
            return time.monotonic() - started, str(caught.value)

    wall, message = asyncio.run(go())
    assert "gave up after 2 attempts; last: no complete answer within 0.1s" in message
    assert wall < 0.35  # two attempts of 0.1 s and a short backoff, not the 0.4 s answer


def test_a_caller_cancelling_is_not_taken_for_a_timeout():
    """The provider times attempts out by cancelling them; a cancel of the caller's own must
    still reach the caller as a cancel, never be retried as a timeout."""

    async def go():
        async with FakeOpenAI(Faults(latency_s=0.3)) as server:
            model = provider(server, timeout_s=0.2, max_retries=3)
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(model.chat(ask("slow")), 0.05)
            cut = time.monotonic() - started
            fast = provider(server, timeout_s=5.0)
            reply = await fast.chat(ask("patient"))
            await model.close()
            await fast.close()
            return cut, reply, server.stats()

    cut, reply, stats = asyncio.run(go())
    assert cut < 0.15  # the caller's 0.05 s, not the provider's 0.2 s and its retries
    assert stats["received"] == 2  # no retry of the cancelled request
    assert reply.message["content"]


def test_a_wrong_key_fails_at_once_and_names_the_variable(monkeypatch):
    monkeypatch.setenv("FCSFT_TEST_KEY", "sk-wrong-0123456789")

    async def go():
        async with FakeOpenAI(api_key="sk-right") as server:
            model = load_model(f"openai:m@{server.base_url}", api_key_env="FCSFT_TEST_KEY")
            keyless = load_model(f"openai:m@{server.base_url}", api_key_env="FCSFT_NO_SUCH_KEY")
            errors = []
            for candidate in (model, keyless):
                with pytest.raises(ModelError) as caught:
                    await candidate.chat(ask("hello"))
                errors.append(str(caught.value))
                await candidate.close()
            return errors, server.stats()

    (wrong, missing), stats = asyncio.run(go())
    assert stats["received"] == 2  # a 401 is not retried
    assert "HTTP 401: Incorrect API key provided.; check the key in $FCSFT_TEST_KEY" in wrong
    assert "no API key was sent: set $FCSFT_NO_SUCH_KEY" in missing
    assert "sk-wrong" not in wrong


def test_a_model_that_cannot_be_used_is_asked_once_and_a_cached_reply_needs_no_model(tmp_path):
    async def go():
        async with FakeOpenAI(api_key="sk-right") as server:
            cache = ResponseCache(tmp_path / "cache.sqlite")
            keyed = Client(OpenAIProvider("m", server.base_url, api_key="sk-right"), cache=cache)
            await keyed.chat(ask("asked before"))
            await keyed.close()
            server.reset()
            keyless = Client(provider(server), cache=cache, concurrency=8)
            before = await keyless.chat(ask("asked before"))  # from the cache: no model needed
            outcomes = await asyncio.gather(
                *(keyless.try_chat(ask(f"q{i}")) for i in range(20)), return_exceptions=True
            )
            after = await keyless.chat(ask("asked before"))
            await keyless.close()
            cache.close()
            return before, outcomes, after, server.received, server.base_url

    before, outcomes, after, received, base_url = asyncio.run(go())
    assert received == 1  # the first request went alone; the others never left
    assert before.cached and after.cached
    assert all(isinstance(o, ModelUnavailable) for o in outcomes)
    assert {str(o) for o in outcomes} == {
        f"m at {base_url}/chat/completions: HTTP 401: Incorrect API key provided.; no API key "
        "was sent: set $OPENAI_API_KEY"
    }


def test_model_uris():
    model = load_model("openai:deepseek-chat@https://api.deepseek.com/")
    assert (model.name, model.url) == ("deepseek-chat", "https://api.deepseek.com/chat/completions")
    local = load_model("openai:qwen3:8b@http://localhost:11434/v1")
    assert (local.name, local.url) == ("qwen3:8b", "http://localhost:11434/v1/chat/completions")
    assert load_model("openai:gpt-4o-mini").url == "https://api.openai.com/v1/chat/completions"
    with pytest.raises(UserError, match="expected openai:MODEL@BASE_URL"):
        load_model("openai:m@ftp://example.com")


# ---------------------------------------------------------------- the client


def test_faults_everywhere_every_request_ends_once_and_nothing_is_billed_twice():
    faults = Faults(rate_429=0.1, rate_500=0.1, rate_drop=0.1, rate_malformed=0.1, retry_after="0")

    async def go():
        async with FakeOpenAI(faults) as server:
            client = Client(provider(server, max_retries=2), concurrency=16, prices=PRICES)
            outcomes = await asyncio.gather(*(client.try_chat(ask(f"q{i}")) for i in range(120)))
            await client.close()
            return outcomes, client.totals(), server

    outcomes, totals, server = asyncio.run(go())
    replies = [o for o in outcomes if isinstance(o, ChatResponse)]
    errors = [o for o in outcomes if isinstance(o, ModelError)]
    assert len(replies) + len(errors) == 120 == totals.requests
    assert len(errors) == totals.errors > 0  # 40% faults, 3 attempts: some give up
    assert all("gave up after 3 attempts" in str(e) for e in errors)
    assert sorted(r.extra["id"] for r in replies) == sorted(server.answer_ids)
    assert server.stats()["answered_twice"] == 0
    assert server.received > server.answered == len(replies)
    assert totals.prompt_tokens == server.tokens["prompt_tokens"]
    assert totals.completion_tokens == server.tokens["completion_tokens"]
    assert totals.cost == pytest.approx(sum(r.extra["cost"] for r in replies))


def test_a_rerun_is_served_from_the_cache_for_free(tmp_path):
    requests = [ask(f"q{i}") for i in range(20)]

    async def run_once(server):
        client = Client(provider(server), cache=ResponseCache(tmp_path / "cache.sqlite"))
        client.prices = PRICES
        replies = await asyncio.gather(*(client.chat(r) for r in requests))
        await client.close()
        client.cache.close()
        return replies, client.totals()

    async def go():
        async with FakeOpenAI() as server:
            first = await run_once(server)
            received = server.received
            second = await run_once(server)
            return first, second, received, server.received

    (first, paid), (again, free), received_first, received_total = asyncio.run(go())
    assert received_first == 20 and received_total == 20  # the re-run sent nothing
    assert paid.cost > 0 and paid.cached == 0
    assert free == Counters(requests=20, cached=20)
    assert [r.message for r in again] == [r.message for r in first]
    assert all(r.cached and r.extra["cost"] == 0.0 for r in again)
    assert [r.prompt_tokens for r in again] == [r.prompt_tokens for r in first]


def test_the_cache_keeps_the_servers_body_and_gives_back_the_same_reply(tmp_path):
    """A reply from an OpenAI-compatible server is stored as the body it came in, and comes
    back from the cache as the same message, usage and finish reason."""

    def reply(body):
        return {"content": None, "reasoning": "Add.", "tool_calls": [tool_call("add", {"a": 1})]}

    async def go():
        async with FakeOpenAI(reply=reply) as server:
            client = Client(provider(server), cache=ResponseCache(tmp_path / "cache.sqlite"))
            fresh = await client.chat(ask("1+1?"))
            await client.close()
            client.cache.close()
            client = Client(provider(server), cache=ResponseCache(tmp_path / "cache.sqlite"))
            again = await client.chat(ask("1+1?"))
            await client.close()
            client.cache.close()
            return fresh, again

    fresh, again = asyncio.run(go())
    with sqlite3.connect(tmp_path / "cache.sqlite") as db:
        (stored,) = db.execute("SELECT response FROM replies").fetchone()
    assert stored == fresh.body and json.loads(stored)["object"] == "chat.completion"
    assert again.cached and not fresh.cached
    assert again.message == fresh.message and again.message["reasoning_content"] == "Add."
    assert (again.prompt_tokens, again.completion_tokens, again.finish_reason) == (
        fresh.prompt_tokens,
        fresh.completion_tokens,
        "tool_calls",
    )


def test_identical_requests_in_flight_are_sent_once():
    async def go():
        async with FakeOpenAI(Faults(latency_s=0.05)) as server:
            client = Client(provider(server), prices=PRICES)
            replies = await asyncio.gather(*(client.chat(ask("same")) for _ in range(5)))
            replies.append(await client.chat(ask("same", sample=1)))  # another sample: sent
            await client.close()
            return replies, client.totals(), server.received

    replies, totals, received = asyncio.run(go())
    assert received == 2
    assert totals.requests == 6 and totals.cached == 4
    assert sum(not r.cached for r in replies) == 2
    assert totals.cost == pytest.approx(sum(r.extra["cost"] for r in replies))
    replies[0].message["content"] = "changed"  # each caller owns its copy
    assert replies[1].message["content"] == "echo: same"


def test_the_concurrency_limit_holds_at_the_server():
    async def go():
        async with FakeOpenAI(Faults(latency_s=0.02)) as server:
            client = Client(provider(server), concurrency=5)
            await asyncio.gather(*(client.chat(ask(f"q{i}")) for i in range(40)))
            await client.close()
            return server.max_in_flight, server.received

    max_in_flight, received = asyncio.run(go())
    assert received == 40
    assert max_in_flight == 5


def test_stages_are_billed_separately():
    async def go():
        async with FakeOpenAI() as server:
            client = Client(provider(server), prices=PRICES)
            expand, generate = client.for_stage("expand"), client.for_stage("generate")
            await expand.chat(ask("a"))
            await generate.chat(ask("b"))
            await generate.chat(ask("c"))
            await client.close()
            return client, server.tokens

    client, tokens = asyncio.run(go())
    expand, generate = client.stages["expand"], client.stages["generate"]
    assert (expand.requests, generate.requests) == (1, 2)
    total = client.totals()
    assert total.prompt_tokens == tokens["prompt_tokens"]
    assert total.cost == pytest.approx(expand.cost + generate.cost)
    assert set(generate.to_json()) == {
        "requests",
        "cached",
        "errors",
        "prompt_tokens",
        "completion_tokens",
        "cost",
    }


def test_a_client_survives_a_new_event_loop():
    with FakeOpenAI() as server:  # a thread of its own: it outlives each asyncio.run below
        client = Client(provider(server), concurrency=2)
        for round_ in range(2):
            asyncio.run(client.chat(ask(f"round {round_}")))
        asyncio.run(client.close())
        assert server.answered == 2


def test_the_agent_loop_runs_on_the_real_client():
    def reply(body):
        if body["messages"][-1]["role"] == "tool":
            return f"The sum is {body['messages'][-1]['content']}."
        return {"content": None, "tool_calls": [tool_call("add", {"a": 2, "b": 3})]}

    class Adder:
        spec = Tool(name="add", description="Add.", parameters={"type": "object"})

        async def run(self, arguments):
            class Result:
                content = str(arguments["a"] + arguments["b"])
                error = False

            return Result()

    async def go():
        async with FakeOpenAI(reply=reply) as server:
            client = Client(provider(server), prices=PRICES)
            trajectory = await run_agent(
                client.for_stage("generate"),
                "m",
                "2+3?",
                {"add": Adder()},
                ident="t1",
                protocol="native",
            )
            await client.close()
            return trajectory, client.counters("generate")

    trajectory, counters = asyncio.run(go())
    assert trajectory.meta.model_extra["stop"] == "final_answer"
    assert trajectory.calls[0].arguments == {"a": 2, "b": 3}
    assert counters.requests == 2
    assert trajectory.meta.usage.cost == pytest.approx(counters.cost)


# ---------------------------------------------------------------- the cache


@pytest.mark.parametrize(
    "request_",
    [
        ask("hi", tools=[{"type": "function", "function": {"name": "f"}}], seed=3),
        ask('é "quoted", \n', stop=["<observation"], temperature=0.7, max_tokens=5, sample=2),
        ChatRequest(model="ünï", messages=[], temperature=1, seed=-1),
    ],
)
def test_cache_keys_hash_the_whole_request_and_the_provider(request_):
    # The key's text is spliced from parts; it must stay what json.dumps writes, or every
    # cache written before would miss.
    same_json = json.dumps(asdict(request_), sort_keys=True, ensure_ascii=False)
    assert cache_key("m", request_) == hashlib.sha256(f"m\n{same_json}".encode()).hexdigest()
    assert cache_key("m", request_) != cache_key("other-model", request_)
    assert cache_key("m", request_) != cache_key("m", replace(request_, sample=7))


def test_encoding_a_request_keeps_its_text_without_making_a_dict():
    # An object made for each sent request and kept with it is one the garbage collector's
    # youngest generation must scan: an instance dict made for each (Python keeps fields
    # without one until __dict__ is read) made gen-0 passes ten times longer at 256 in flight.
    request = ask("hi", tools=[{"type": "function", "function": {"name": "f"}}])
    messages, tools = request.encoded()
    assert messages == json.dumps(request.messages, sort_keys=True)
    assert request.encoded() == (messages, tools) and request.encoded()[0] is messages
    assert not [kept for kept in gc.get_referents(request) if type(kept) is dict]
    for twin in (pickle.loads(pickle.dumps(request)), copy.deepcopy(request)):  # e.g. to Ray
        assert twin == request and twin.encoded() == (messages, tools)


def test_the_body_sent_is_the_request_under_the_servers_model_name():
    request = ask("hi", tools=[{"type": "function", "function": {"name": "f"}}], stop=["<o"])
    body = json.loads(OpenAIProvider("served-name", "http://127.0.0.1:9/v1")._body(request))
    assert body == {
        "model": "served-name",
        "messages": request.messages,
        "temperature": 0.0,
        "max_tokens": 1024,
        "tools": request.tools,
        "stop": ["<o"],
    }


def test_the_cache_reads_its_own_writes_and_keeps_them(tmp_path):
    path = tmp_path / "cache.sqlite"
    # Text that the batch's JSON must carry through unchanged: quotes, escapes, newlines,
    # non-ASCII, and a string that is itself JSON.
    content = 'il fait "beau" à Zürich\n\\d {"a": [1, 2]} 🌤'
    reply = ChatResponse(message={"role": "assistant", "content": content}, prompt_tokens=3)
    with ResponseCache(path) as cache:
        cache.put("k", reply)
        assert cache.get("k") == reply  # before any commit
        assert cache.get("missing") is None
    with ResponseCache(path) as cache:
        assert cache.get("k") == reply and len(cache) == 1


def test_the_replies_an_input_used_come_back_for_it_from_the_file(tmp_path):
    """What a worker hands back (`CarriedReplies`) is kept by the owner of the file, and the
    next time the input is sent, exactly those replies go with it."""
    path = tmp_path / "cache.sqlite"
    replies = {k: ChatResponse(message={"content": k}) for k in ("a", "b", "c")}
    worker = CarriedReplies()
    with worker.carrying({}) as first:
        assert worker.get("a") is None
        worker.put("a", replies["a"])
        worker.put("b", replies["b"])
        assert worker.get("a") == replies["a"]
    assert worker.get("a") is None  # outside an input, nothing is kept
    with ResponseCache(path) as cache:
        assert cache.replies_of("gen\0t1") == {}  # no list was ever written: no table yet
        for key, blob in first.made.items():
            cache.put_encoded(key, blob)
        cache.put("c", replies["c"])  # another input's
        cache.note_replies("gen\0t1", list(first.used))
        assert set(cache.replies_of("gen\0t1")) == {"a", "b"}  # before the commit
    with ResponseCache(path) as cache:
        given = cache.replies_of("gen\0t1")
        assert set(given) == {"a", "b"} and cache.replies_of("gen\0t2") == {}
        cache.note_replies("gen\0t1", ["b", "c", "gone"])  # the next attempt's list replaces it
    with ResponseCache(path) as cache:
        assert cache.set_aside is None  # the lists' table belongs to a cache
        again = cache.replies_of("gen\0t1")
    assert set(again) == {"b", "c"}
    with worker.carrying(again) as second:
        assert worker.get("b") == replies["b"] and worker.get("a") is None
    assert list(second.used) == ["b"] and second.made == {}


def test_misses_are_answered_from_memory_once_they_cost_what_reading_the_keys_does(tmp_path):
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        for i in range(64):
            cache.put(f"k{i}", ChatResponse(message={"content": str(i)}))
    with ResponseCache(path) as cache:
        assert all(cache.get(f"k{i}") is not None for i in range(64))
        assert cache._known is None  # a re-run that finds everything never reads the keys
        assert cache.get("missing-1") is None  # 32 keys' worth of cost: 64 keys not yet read
        assert cache._known is None
        assert cache.get("missing-2") is None
        assert cache._known is not None  # read now; misses no longer query the file
        cache.put("new", ChatResponse(message={"content": "new"}))
        assert cache.get("k7").message == {"content": "7"} and cache.get("new") is not None


def test_a_key_another_process_stored_is_found_after_the_refresh(tmp_path, monkeypatch):
    path = tmp_path / "cache.sqlite"
    reply = ChatResponse(message={"role": "assistant", "content": "x"})
    with ResponseCache(path) as reader, ResponseCache(path) as writer:
        assert reader.get("k") is None  # a miss in an empty file: the reader reads its keys
        writer.put("k", reply)
        writer.flush()
        monkeypatch.setattr(cache_module, "_REFRESH_S", 3600.0)
        assert reader.get("k") is None  # a miss is answered from the keys read
        monkeypatch.setattr(cache_module, "_REFRESH_S", 0.0)
        assert reader.get("k") == reply  # which learn the rows added since


def test_the_refresh_reads_other_processes_rows_and_skips_its_own(tmp_path, monkeypatch):
    path = tmp_path / "cache.sqlite"
    reply = ChatResponse(message={"role": "assistant", "content": "x"})
    with ResponseCache(path) as mine, ResponseCache(path) as theirs:
        assert mine.get("k") is None  # empty file: `mine` reads its keys and keeps them
        mine.put("mine-1", reply)
        mine.flush()
        theirs.put("theirs", reply)  # committed between two of mine
        theirs.flush()
        mine.put("mine-2", reply)
        mine.flush()
        own = {cache_module.key_hash("mine-1"), cache_module.key_hash("mine-2")}
        mine._known -= own  # so that reading them back would show
        monkeypatch.setattr(cache_module, "_REFRESH_S", 0.0)
        assert mine.get("theirs") == reply  # learned from the file
        assert not own & mine._known  # its own rows were not read back
        assert mine._known_rowid == 3 and not mine._own_rows


def test_keys_sharing_a_hash_never_get_each_others_reply(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_module, "key_hash", lambda key: 42)  # every key collides
    path = tmp_path / "cache.sqlite"
    with ResponseCache(path) as cache:
        cache.put("first", ChatResponse(message={"content": "first"}))
        cache.put("second", ChatResponse(message={"content": "second"}))
    with ResponseCache(path) as cache:
        assert cache.get("first").message == {"content": "first"}
        assert cache.get("second") is None  # not stored: asked of the model again, not answered
        assert len(cache) == 1


def test_a_cache_file_from_before_the_hash_index_keeps_its_replies(tmp_path):
    path = tmp_path / "cache.sqlite"
    reply = ChatResponse(message={"role": "assistant", "content": "kept"}, prompt_tokens=5)
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE responses (key TEXT PRIMARY KEY, response TEXT NOT NULL, created REAL)"
    )
    old.execute("INSERT INTO responses VALUES ('k', ?, 0)", (cache_module.encode_response(reply),))
    old.commit()
    old.close()
    with ResponseCache(path) as cache:
        assert cache.get("k") == reply and len(cache) == 1
        assert cache.get("other") is None
    tables = sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")
    assert [name for (name,) in tables] == ["replies"]


def _half_a_cache(path):
    with ResponseCache(path) as cache:
        for i in range(500):
            cache.put(f"k{i}", ChatResponse(message={"content": "x" * 500}))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _another_database(path):
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE replies (name TEXT, value TEXT)")
    other.execute("INSERT INTO replies VALUES ('theirs', 'keep me')")
    other.commit()
    other.close()


def _a_database_of_other_tables(path):
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (text TEXT)")
    other.commit()
    other.close()


@pytest.mark.parametrize(
    "spoil",
    [
        lambda path: path.write_bytes(b"not a database\n" * 64),
        _half_a_cache,
        _another_database,
        _a_database_of_other_tables,
    ],
    ids=["garbage", "half a file", "other replies", "other tables"],
)
def test_a_file_that_is_not_a_cache_is_set_aside_and_the_run_goes_on(tmp_path, spoil, caplog):
    path = tmp_path / "cache.sqlite"
    spoil(path)
    before = path.read_bytes()

    async def go():
        async with FakeOpenAI() as server:
            cache = ResponseCache(path)
            client = Client(provider(server), cache=cache)
            reply = await client.chat(ask("hello"))
            await client.close()
            cache.close()
            return reply, cache.set_aside, server.received

    reply, moved, received = asyncio.run(go())
    assert reply.message["content"] == "echo: hello" and received == 1
    assert moved is not None and moved.name.startswith("cache.sqlite.corrupt-")
    assert moved.read_bytes() == before  # kept as it was, for whoever wants to look
    [warning] = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warning.startswith(f"{path} is not a usable response cache (")
    assert warning.endswith(f"set aside as {moved.name}, starting an empty one")
    with ResponseCache(path) as cache:  # the new file is a cache, with the new reply in it
        assert len(cache) == 1 and cache.set_aside is None


def test_a_cached_reply_that_does_not_decode_is_a_miss_and_is_replaced(tmp_path):
    path = tmp_path / "cache.sqlite"

    async def once(server, text):
        cache = ResponseCache(path)
        client = Client(provider(server), cache=cache)
        reply = await client.chat(ask(text))
        await client.close()
        cache.close()
        return reply

    async def go():
        async with FakeOpenAI() as server:
            await once(server, "hello")
            await once(server, "other")
            spoilt = sqlite3.connect(path)
            spoilt.execute('UPDATE replies SET response = \'{"choices": [{"mess\' WHERE rowid = 1')
            spoilt.commit()
            spoilt.close()
            again = await once(server, "hello")  # its row is broken: asked again
            other = await once(server, "other")  # its row is fine: from the cache
            third = await once(server, "hello")  # the new reply replaced the broken row
            return again, other, third, server.received

    again, other, third, received = asyncio.run(go())
    assert received == 3
    assert not again.cached and again.message["content"] == "echo: hello"
    assert other.cached and third.cached and third.message["content"] == "echo: hello"
    with ResponseCache(path) as cache:
        assert len(cache) == 2


def _write_entries(path, prefix, count, start=None):
    if start is not None:
        start.wait(timeout=30)  # all writers begin at once, so their transactions interleave
    with ResponseCache(path) as cache:
        for i in range(count):
            cache.put(f"{prefix}{i}", ChatResponse(message={"content": f"{prefix}{i}"}))
            if i % 10 == 0:
                cache.flush()  # many small transactions: many chances to collide


def test_two_processes_writing_one_cache_lose_nothing(tmp_path):
    path = tmp_path / "cache.sqlite"
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(3)
    writers = [
        spawn.Process(target=_write_entries, args=(path, prefix, 400, start))
        for prefix in ("a", "b")
    ]
    for writer in writers:
        writer.start()
    _write_entries(path, "shared", 200, start)  # and this process at the same time
    _write_entries(path, "a", 10)  # keys another writer also wrote: kept once
    for writer in writers:
        writer.join(timeout=60)
        assert writer.exitcode == 0
    with ResponseCache(path) as cache:
        assert len(cache) == 1000
        assert cache.get("a399").message == {"content": "a399"}
        assert cache.get("b0").message == {"content": "b0"}
        assert cache.get("shared199").message == {"content": "shared199"}


def test_replies_put_without_close_are_committed_at_exit(tmp_path):
    path = tmp_path / "cache.sqlite"
    script = (
        "import sys\n"
        "from fcsft.models.base import ChatResponse\n"
        "from fcsft.models.cache import ResponseCache\n"
        "cache = ResponseCache(sys.argv[1])\n"
        "for i in range(100):\n"
        "    cache.put(f'k{i}', ChatResponse(message={'content': str(i)}))\n"
    )
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)
    with ResponseCache(path) as cache:
        assert len(cache) == 100


def test_the_api_key_never_reaches_the_cache_file(tmp_path, monkeypatch):
    secret = "sk-fcsft-test-" + "7" * 32
    monkeypatch.setenv("FCSFT_TEST_KEY", secret)

    async def go():
        async with FakeOpenAI(api_key=secret) as server:
            model = load_model(f"openai:m@{server.base_url}", api_key_env="FCSFT_TEST_KEY")
            cache = ResponseCache(tmp_path / "cache.sqlite")
            client = Client(model, cache=cache)
            await asyncio.gather(*(client.chat(ask(f"q{i}")) for i in range(10)))
            await client.close()
            cache.close()
            return model, server.answered

    model, answered = asyncio.run(go())
    assert answered == 10  # the key was sent, and accepted
    files = list(tmp_path.iterdir())
    assert files
    for file in files:
        assert secret.encode() not in file.read_bytes(), file
    assert secret not in repr(model)


def test_a_cache_named_by_a_relative_path_reopens(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    reply = ChatResponse(message={"role": "assistant", "content": "x"})
    with ResponseCache(Path("run") / "cache.sqlite") as cache:
        cache.put("k", reply)
    with ResponseCache(Path("run") / "cache.sqlite") as cache:
        assert cache.get("k") == reply
