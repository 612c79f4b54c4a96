"""A real OpenAI-compatible HTTP server on 127.0.0.1, with the failures real servers have.

Tests, benches and demos point `openai:MODEL@http://127.0.0.1:PORT/v1` at it and exercise the
whole network path: sockets, keep-alive, status codes, retry headers. A fake at the Python
level would test none of that. `POST /v1/chat/completions` answers a short echo of the last
user message, or whatever `reply(body)` returns (text, or an assistant message with
`tool_calls`). `Faults` injects latency, 429s with Retry-After, 500s, connections closed
without an answer and bodies that are not JSON, at random rates and/or scripted for the
first attempts of every distinct request.

The server counts what it received and what it answered successfully, per request, which is
how tests prove that no request was answered, and so billed, twice.

Run it three ways: `with FakeOpenAI() as server:` (a background thread), `async with
FakeOpenAI() as server:` (in the caller's event loop), or as a process for benches:
`python -m fcsft.testing.fake_openai --latency-ms 50` prints its base URL, then serves until
stopped (`--reply MODULE:FUNCTION` picks the replies). `GET /_fake/stats` returns the
counters as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from fcsft.tools.function import load_function

Reply = Callable[[dict[str, Any]], "str | dict[str, Any]"]
FAULTS = ("429", "500", "drop", "malformed")


@dataclass
class Faults:
    """Which failures the server injects, and how often."""

    latency_s: float = 0.0
    """Added before every answer, failed or not: the time a real model takes."""
    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_drop: float = 0.0
    """Close the connection without answering."""
    rate_malformed: float = 0.0
    """Answer 200 with a body cut off mid-JSON."""
    retry_after: str | None = "1"
    """The Retry-After header sent with a 429 (seconds or an HTTP date); None sends none."""
    first_attempts: list[str] = field(default_factory=list)
    """Faults for the 1st, 2nd, ... attempt of every distinct request, before the rates apply:
    e.g. ["429", "drop"]. Each is one of 429, 500, drop, malformed, ok."""
    seed: int = 0


def tool_call(name: str, arguments: dict[str, Any], ident: str = "call_0") -> dict[str, Any]:
    """A tool call in the shape servers send (arguments as a JSON string)."""
    return {
        "id": ident,
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def echo(body: dict[str, Any]) -> str:
    """The default reply: the last user message, repeated."""
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            return f"echo: {str(message.get('content'))[:200]}"
    return "echo"


def request_digest(body: dict[str, Any]) -> str:
    """What makes two requests the same request: their messages, tools and model."""
    same = [body.get("model"), body.get("messages"), body.get("tools")]
    return hashlib.sha256(json.dumps(same, sort_keys=True).encode()).hexdigest()[:16]


class FakeOpenAI:
    """The server. `base_url` is valid once it is started."""

    def __init__(
        self,
        faults: Faults | None = None,
        reply: Reply | None = None,
        *,
        api_key: str | None = None,
    ):
        self.faults = faults or Faults()
        self.reply = reply or echo
        self.api_key = api_key  # if set, a request without `Bearer <api_key>` gets a 401
        self.port: int | None = None
        self._random = random.Random(self.faults.seed)
        faults = self.faults
        rates = (faults.rate_429, faults.rate_500, faults.rate_drop, faults.rate_malformed)
        self._rates = [(name, rate) for name, rate in zip(FAULTS, rates, strict=True) if rate]
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self.in_flight = 0  # a gauge, not a counter: reset() leaves it alone
        self.reset()

    # ------------------------------------------------------------ counters

    def reset(self) -> None:
        """Zero the counters (the faults and the random sequence carry on)."""
        self.received = 0
        self.answered = 0
        self.failed: Counter[str] = Counter()  # injected fault -> how many times
        self.max_in_flight = self.in_flight
        self.attempts: Counter[str] = Counter()  # request digest -> requests received
        self.answers: Counter[str] = Counter()  # request digest -> successful answers
        self.answer_ids: list[str] = []
        self.tokens = {"prompt_tokens": 0, "completion_tokens": 0}

    def stats(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "answered": self.answered,
            "failed": dict(self.failed),
            "max_in_flight": self.max_in_flight,
            "answered_twice": sum(1 for n in self.answers.values() if n > 1),
            **self.tokens,
        }

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("the fake server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------ running

    async def start_async(self, port: int = 0) -> FakeOpenAI:
        """Serve from the running event loop."""
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/reset", self._reset)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port, backlog=4096)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> FakeOpenAI:
        """Serve from a background thread with its own event loop."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.stop_async())
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is not None and self._thread_loop is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join()
            self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start_async()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop_async()

    # ------------------------------------------------------------ handlers

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        self.received += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.api_key and request.headers.get("Authorization") != f"Bearer {self.api_key}":
                self.failed["401"] += 1
                return _error(401, "Incorrect API key provided.")
            body = json.loads(await request.read())
            digest = request_digest(body)
            fault = self._choose_fault(digest)
            self.attempts[digest] += 1
            if self.faults.latency_s:
                await asyncio.sleep(self.faults.latency_s)
            if fault != "ok":
                self.failed[fault] += 1
                return self._fail(fault, request)
            return self._answer(body, digest)
        finally:
            self.in_flight -= 1

    def _choose_fault(self, digest: str) -> str:
        attempt = self.attempts[digest]
        if attempt < len(self.faults.first_attempts):
            return self.faults.first_attempts[attempt]
        rates = self._rates
        if not rates:
            return "ok"
        draw = self._random.random()
        for name, rate in rates:
            if draw < rate:
                return name
            draw -= rate
        return "ok"

    def _fail(self, fault: str, request: web.Request) -> web.StreamResponse:
        if fault == "429":
            headers = (
                {} if self.faults.retry_after is None else {"Retry-After": self.faults.retry_after}
            )
            return _error(429, "Rate limit reached; slow down.", headers)
        if fault == "500":
            return _error(500, "The server had an error while processing your request.")
        if fault == "drop":
            if request.transport is not None:
                request.transport.close()
            return web.Response()  # never sent: the connection is gone
        if fault == "malformed":
            return web.Response(
                body=b'{"id": "chatcmpl-x", "choices": [{"mess', content_type="application/json"
            )
        raise ValueError(f"unknown fault {fault!r}; known: {', '.join((*FAULTS, 'ok'))}")

    def _answer(self, body: dict[str, Any], digest: str) -> web.Response:
        reply = self.reply(body)
        message = {"role": "assistant", "content": reply} if isinstance(reply, str) else reply
        message = {"role": "assistant", "content": None} | message
        prompt_tokens = 1 + len(json.dumps(body.get("messages"))) // 4
        completion_tokens = 1 + len(json.dumps(message)) // 4
        self.answered += 1
        self.answers[digest] += 1
        ident = f"chatcmpl-{self.answered}"
        self.answer_ids.append(ident)
        self.tokens["prompt_tokens"] += prompt_tokens
        self.tokens["completion_tokens"] += completion_tokens
        completion = {
            "id": ident,
            "object": "chat.completion",
            "model": body.get("model"),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return web.Response(body=json.dumps(completion).encode(), content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = {"error": {"message": message, "type": "fake_error", "code": status}}
    return web.Response(
        status=status,
        body=json.dumps(body).encode(),
        content_type="application/json",
        headers=headers,
    )


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C; the first line printed is the base URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--rate-drop", type=float, default=0.0)
    parser.add_argument("--rate-malformed", type=float, default=0.0)
    parser.add_argument("--retry-after", default="1")
    parser.add_argument(
        "--reply",
        help="MODULE:FUNCTION answering each request body, e.g. "
        "fcsft.testing.teacher:two_calls_then_answer (default: echo)",
    )
    args = parser.parse_args(argv)
    reply = load_function(args.reply) if args.reply else None
    faults = Faults(
        latency_s=args.latency_ms / 1000,
        rate_429=args.rate_429,
        rate_500=args.rate_500,
        rate_drop=args.rate_drop,
        rate_malformed=args.rate_malformed,
        retry_after=args.retry_after,
    )

    async def serve() -> None:
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopped.set)
        async with FakeOpenAI(faults, reply) as server:
            print(server.base_url, flush=True)
            await stopped.wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
