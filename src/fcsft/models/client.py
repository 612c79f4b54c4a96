"""The one client every model call goes through: a concurrency limit, the cache, and the bill.

Wrap any Provider in a `Client` and hand out `client.for_stage("generate")` to each stage. What
it adds to the provider, and why:

- At most `concurrency` requests are with the provider at once, however many callers wait.
  Cache hits skip the queue: they cost nothing and should not wait behind requests that do.
- A reply found in the cache comes back with `cached=True` and cost 0. Identical requests in
  flight at the same moment are sent once; the others wait for that reply and count as cached.
- Tokens and cost are counted per stage, from a price table in currency per million tokens.
  Only replies that came from the provider are billed, once each: the provider returns only
  the attempt that succeeded, so retries are never billed twice.
- A request that fails for good is counted as an error. `chat` raises it as a ModelError (the
  contract the agent loop expects); `try_chat` returns it, for callers that would rather not.
- A model that cannot be used must not turn every record into a rejection. The first request
  that is not in the cache goes alone, and the others wait for its outcome; if the provider
  says no request can succeed (`ModelUnusable`: a refused key, an unknown model, a server
  that cannot be reached), that request and every later one raise `ModelUnavailable`, a
  one-line user error that ends the run. The same happens once `breaker_share` of the last
  `breaker_window` requests sent failed the same way (`ModelError.kind`). A cached reply
  needs no model: a re-run served from the cache never waits or stops.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from fcsft.models.base import (
    ChatRequest,
    ChatResponse,
    ModelError,
    ModelUnavailable,
    ModelUnusable,
    Provider,
    Reusing,
)
from fcsft.models.cache import ResponseCache, decode_response, encode_response

Prices = Mapping[str, Mapping[str, float]]  # model -> {"input_per_mtok": x, "output_per_mtok": y}
DEFAULT_STAGE = "default"


@dataclass
class Counters:
    """What one stage asked of a model and what it cost; goes into the stage's stats.json."""

    requests: int = 0
    """Every request made, from the cache or not."""
    cached: int = 0
    """Requests answered from the cache (never billed)."""
    errors: int = 0
    """Requests that failed for good, after the provider's retries."""
    prompt_tokens: int = 0
    """Billed prompt tokens (replies from the cache excluded)."""
    completion_tokens: int = 0
    """Billed completion tokens."""
    cost: float = 0.0
    """Billed cost, from the price table; 0 for models it does not list."""

    def add(self, other: Counters) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"cost": round(self.cost, 6)}


def price_of(prices: Prices, model: str, prompt_tokens: int, completion_tokens: int) -> float:
    """Cost of one reply; a model missing from the table costs 0."""
    price = prices.get(model)
    if not price:
        return 0.0
    return (
        prompt_tokens * price.get("input_per_mtok", 0.0)
        + completion_tokens * price.get("output_per_mtok", 0.0)
    ) / 1e6


def records_at_once(model: Any) -> int:
    """How many records a stage whose every record asks `model` should process at once: one
    per request its client lets in flight (`models.ROLE.concurrency`), so no request slot
    waits for work; 1 for a model that sets no limit (a test double)."""
    return getattr(model, "concurrency", 1)


def replies_name(model: Any, name: str) -> str:
    """What a stage that records `model`'s replies knows it by, in its config: the name the
    replies are cached under (`Client.cache_name`: a local model's call bias is part of it),
    so a setting that changes the replies asks again; `name` for a model without one."""
    return getattr(model, "cache_name", name)


def cache_key(provider_name: str, request: ChatRequest) -> str:
    """The name of a reply in the cache: the hash of the provider's name and the whole request."""
    blob = request.canonical_json()
    return hashlib.sha256(f"{provider_name}\n{blob}".encode()).hexdigest()


class Client:
    """A Provider behind a concurrency limit, a response cache and per-stage accounting.

    `prices` is looked up by the request's model name, then by the provider's name.
    Cache keys hash the provider's name with the whole request (`cache_key`), so pointing a
    role at another model never serves the old model's replies.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        concurrency: int = 16,
        cache: ResponseCache | None = None,
        prices: Prices | None = None,
        breaker_window: int = 20,
        breaker_share: float = 0.8,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.breaker_window = breaker_window
        self.breaker_share = breaker_share
        # Error kinds (None: answered) of the last requests sent to the provider.
        self._recent: deque[str | None] = deque(maxlen=breaker_window)
        self._stopped: ModelUnavailable | None = None  # once set, every request raises it
        self._reached = False  # a request came back from the provider: fan out freely
        self._first: asyncio.Future[None] | None = None  # the request others wait for
        self.provider = provider
        self.name = provider.name
        # What the cache knows the provider by: its name, and any setting that changes its
        # replies to the same request (a local model's call bias).
        self.cache_name = replies_name(provider, provider.name)
        self.concurrency = concurrency
        self.cache = cache
        self.prices: Prices = prices or {}
        self.stages: dict[str, Counters] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = asyncio.Semaphore(concurrency)
        # Requests being sent, by cache key, with the futures of identical requests waiting on
        # them (None until one does: most requests have no twin, so no list is made for them).
        self._in_flight: dict[str, list[asyncio.Future[ChatResponse | None]] | None] = {}

    def for_stage(self, stage: str) -> StageClient:
        """A view of this client that bills `stage`; it shares the limit, cache and provider."""
        return StageClient(self, stage)

    def counters(self, stage: str = DEFAULT_STAGE) -> Counters:
        counters = self.stages.get(stage)
        if counters is None:
            counters = self.stages[stage] = Counters()
        return counters

    def totals(self) -> Counters:
        """All stages together."""
        total = Counters()
        for counters in self.stages.values():
            total.add(counters)
        return total

    async def chat(self, request: ChatRequest, *, stage: str = DEFAULT_STAGE) -> ChatResponse:
        """The reply, from the cache or the provider; a failure is counted, then raised."""
        counters = self.counters(stage)
        counters.requests += 1
        started = time.monotonic()
        key = self._cache_key(request)
        try:
            response, fresh = await self._reply(key, request)
        except ModelError:
            counters.errors += 1
            raise
        if not fresh:  # from the cache or from an identical request in flight
            counters.cached += 1
            response.cached = True
            response.latency_s = time.monotonic() - started
            response.extra["cost"] = 0.0
            return response
        cost = price_of(
            self.prices,
            request.model if request.model in self.prices else self.name,
            response.prompt_tokens,
            response.completion_tokens,
        )
        counters.prompt_tokens += response.prompt_tokens
        counters.completion_tokens += response.completion_tokens
        counters.cost += cost
        response.extra["cost"] = cost
        return response

    async def try_chat(
        self, request: ChatRequest, *, stage: str = DEFAULT_STAGE
    ) -> ChatResponse | ModelError:
        """The reply, or the ModelError that ended the request: counted, never raised."""
        try:
            return await self.chat(request, stage=stage)
        except ModelError as error:
            return error

    async def close(self) -> None:
        """Close the provider's connections and make every cached reply durable."""
        await self.provider.close()
        if self.cache is not None:
            await asyncio.to_thread(self.cache.flush)

    async def _reply(self, key: str, request: ChatRequest) -> tuple[ChatResponse, bool]:
        """The reply, and whether this call fetched it from the provider (and so pays for it)."""
        self._bind_to_running_loop()
        while True:
            if self.cache is not None:
                hit = self.cache.get(key)
                if hit is None:
                    hit = self._reused(key, request)
                if hit is not None:
                    return hit, False
            if key not in self._in_flight:
                break
            waiters = self._in_flight[key]
            if waiters is None:
                waiters = self._in_flight[key] = []
            mine: asyncio.Future[ChatResponse | None] = asyncio.get_running_loop().create_future()
            waiters.append(mine)
            shared = await mine
            if shared is not None:
                return decode_response(encode_response(shared)), False  # a copy of its own
            # None: the request it waited for was cancelled. Go again, maybe as the sender.
        self._in_flight[key] = None
        try:
            if self._reached and self._stopped is None:
                response = await self._send(request)
            else:
                response = await self._send_first(request)
        except BaseException as error:
            # A failure is theirs too; a cancel is not: they go again (None).
            failed = isinstance(error, ModelError)
            for waiter in self._in_flight.pop(key) or ():
                if waiter.done():
                    continue
                if failed:
                    waiter.set_exception(error)
                else:
                    waiter.set_result(None)
            raise
        waiters = self._in_flight.pop(key) or ()
        if self.cache is not None:
            self.cache.put(key, response)  # encoded now, before the caller adds its cost
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(response)
        return response, True

    def _reused(self, key: str, request: ChatRequest) -> ChatResponse | None:
        """A reply the provider says it would give again, cached under the name it `reuses`
        (a local model's unbiased replies, for the same model with a call bias); stored under
        `key` too. None where there is none."""
        if not isinstance(self.provider, Reusing) or self.cache is None:
            return None
        other = self.provider.reuses
        if other is None:
            return None
        prior = self.cache.get(cache_key(other, request))
        if prior is None or not self.provider.keeps(request, prior):
            return None
        self.cache.put(key, prior)
        return prior

    async def _send_first(self, request: ChatRequest) -> ChatResponse:
        """`_send`, once the first request sent has shown the model can be used; the first
        request sent is this one if no other is under way."""
        while True:
            if self._stopped is not None:
                raise self._stopped
            if self._reached:
                return await self._send(request)
            if self._first is None:
                self._first = asyncio.get_running_loop().create_future()
                try:
                    return await self._send(request)
                finally:
                    first, self._first = self._first, None
                    first.set_result(None)  # the others look again (and one goes if this failed)
            await self._first

    async def _send(self, request: ChatRequest) -> ChatResponse:
        """The provider's reply, its failure noted for the breaker."""
        # acquire/release rather than `async with`, whose __aenter__ and __aexit__ are two
        # more coroutines a request: at hundreds in flight the client is CPU-bound.
        await self._slots.acquire()
        try:
            response = await self.provider.chat(request)
        except ModelUnusable as error:
            self._stopped = ModelUnavailable(str(error))
            raise self._stopped from None
        except ModelError as error:
            self._reached = True
            self._note(error)
            raise
        finally:
            self._slots.release()
        self._reached = True
        self._note(None)
        return response

    def _note(self, error: ModelError | None) -> None:
        """Count one request sent; stop once most recent ones failed the same way."""
        if self._stopped is not None:
            return
        self._recent.append(None if error is None else error.kind)
        if error is None or len(self._recent) < self.breaker_window:
            return
        kind, count = Counter(k for k in self._recent if k is not None).most_common(1)[0]
        if kind == error.kind and count >= self.breaker_share * self.breaker_window:
            self._stopped = ModelUnavailable(
                f"{count} of the last {len(self._recent)} requests to {self.name} failed the same "
                f"way, last: {error}; stopped rather than reject every record: fix the cause and "
                "run again (what failed is retried)"
            )
            raise self._stopped from None

    def _cache_key(self, request: ChatRequest) -> str:
        return cache_key(self.cache_name, request)

    def _bind_to_running_loop(self) -> None:
        """asyncio primitives belong to one loop; a client reused under a new loop remakes them."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._slots = asyncio.Semaphore(self.concurrency)
            self._in_flight = {}
            self._first = None


class StageClient:
    """A Client that bills one stage; it answers chat requests like any provider."""

    def __init__(self, client: Client, stage: str):
        self.client = client
        self.stage = stage
        self.name = client.name
        self.cache_name = client.cache_name
        self.concurrency = client.concurrency

    @property
    def counters(self) -> Counters:
        return self.client.counters(self.stage)

    async def chat(self, request: ChatRequest) -> ChatResponse:
        return await self.client.chat(request, stage=self.stage)

    async def try_chat(self, request: ChatRequest) -> ChatResponse | ModelError:
        return await self.client.try_chat(request, stage=self.stage)

    async def close(self) -> None:
        """Nothing: the shared client is closed by whoever made it."""
