"""How close fcsft's model client comes to bare aiohttp, and what the response cache saves.

    python bench/client_throughput.py                  # starts a fake server, 50 ms latency
    python bench/client_throughput.py --base-url URL   # an OpenAI-compatible server you run

Method: the fake server (fcsft.testing.fake_openai) runs in its own process, so that it does
not share an event loop with the clients; it answers every request after 50 ms. At each
concurrency level the same driver (N workers pulling from one list of requests) runs a bare
aiohttp client (one session, JSON encode and decode: the practical ceiling) and fcsft's Client
over the openai provider with a SQLite response cache, `--repeats` times each, alternating,
each run with fresh requests and warm connections; fcsft's runs share one response cache, as
the stages of a run do. Other load on the machine only ever slows
a run down, so each client's figure is its best run (as timeit reports the minimum); the
median of the paired ratios and their range are printed beside it. Then the requests of the
last fcsft run at each level are sent again, three times, each through a new Client on the same
cache file: all are answered from the cache, which is checked against the fake server's count of
requests, and the best of the three is the cached figure. Each opens the cache file afresh, as a
re-run in a new process would.

Figures: vs_raw_cN = fcsft req/s / bare req/s at concurrency N; ratio_c64 = fcsft req/s at 64 /
(64 / latency); cache_speedup = uncached fcsft wall time (at its best rate) / wall time of the
same number of requests from the cache, all levels together (each level's is printed too).
The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from _common import drive, read_base_url, server_stats, start_fake_server, stop_server
from fcsft.models.base import ChatRequest
from fcsft.models.cache import ResponseCache
from fcsft.models.client import Client
from fcsft.models.openai import OpenAIProvider

LEVELS = (1, 16, 64, 256)
CACHED_REPEATS = 3
MODEL = "bench-model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible server (default: start one)")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="the fake server's latency")
    parser.add_argument("--rounds", type=int, default=40, help="requests per worker per run")
    parser.add_argument("--repeats", type=int, default=7, help="runs per client and level")
    args = parser.parse_args()
    server = None if args.base_url else start_fake_server(args.latency_ms)
    base_url = args.base_url or read_base_url(server)
    try:
        with tempfile.TemporaryDirectory(prefix="fcsft-bench-") as folder:
            cache_path = Path(folder) / "cache.sqlite"
            figures = asyncio.run(measure(base_url, cache_path, args, own=server is not None))
    finally:
        stop_server(server)
    print(json.dumps({"bench": "client_throughput", "figures": figures}))


async def measure(
    base_url: str, cache_path: Path, args: argparse.Namespace, *, own: bool
) -> dict[str, float]:
    """Run every level; `own` says the server is ours, so its request count can be checked."""
    print(f"server {base_url}; cache {cache_path}")
    print(
        f"{'conc':>5} {'requests':>8} {'bare req/s':>11} {'fcsft req/s':>12} {'ratio':>6}"
        "   (best runs; median of the pairs' ratios, and their range)"
    )
    figures: dict[str, float] = {}
    uncached_wall = cached_wall = 0.0
    # One cache for the uncached runs, as a run shares one per file across its stages (the
    # contract ResponseCache documents); each cached run opens its own, as a re-run would.
    shared = ResponseCache(cache_path)
    for concurrency in LEVELS:
        count = concurrency * args.rounds
        bare_rates, fcsft_rates = [], []
        for repeat in range(args.repeats):
            requests = make_requests(f"c{concurrency} r{repeat}", count)
            bare_first = repeat % 2 == 0
            if bare_first:
                bare_rates.append(count / await bare_run(base_url, requests, concurrency))
            fcsft_rates.append(count / await fcsft_run(base_url, requests, concurrency, shared))
            if not bare_first:
                bare_rates.append(count / await bare_run(base_url, requests, concurrency))
        # Load from elsewhere on the machine only ever slows a run down, so each client's
        # best run is the closest to what it can do (as timeit reports the minimum).
        bare_rate, fcsft_rate = max(bare_rates), max(fcsft_rates)
        ratio = fcsft_rate / bare_rate
        pairs = [f / b for f, b in zip(fcsft_rates, bare_rates, strict=True)]
        print(
            f"{concurrency:>5} {count:>8} {bare_rate:>11.0f} {fcsft_rate:>12.0f} {ratio:>6.3f}"
            f"   ({statistics.median(pairs):.3f}; {min(pairs):.3f} to {max(pairs):.3f})"
        )
        if concurrency > 1:
            figures[f"vs_raw_c{concurrency}"] = round(ratio, 3)
        if concurrency == 64:
            figures["ratio_c64"] = round(fcsft_rate / (64 / (args.latency_ms / 1000)), 3)

        # The last run's requests again, from the cache, against the best uncached time; the
        # best of a few cached runs too, measured the same way as the uncached figure.
        before = server_stats(base_url)
        cached = min(
            [
                await cached_run(base_url, requests, concurrency, cache_path)
                for _ in range(CACHED_REPEATS)
            ]
        )
        after = server_stats(base_url)
        if own and before and after and before["received"] != after["received"]:
            sent = after["received"] - before["received"]
            raise SystemExit(f"the cached run sent {sent} requests to the server")
        uncached = count / fcsft_rate
        uncached_wall += uncached
        cached_wall += cached
        print(
            f"      from the cache: {count} requests in {cached * 1000:.0f} ms, "
            f"{uncached * 1000:.0f} ms uncached ({uncached / cached:.0f}x)"
        )
    shared.close()
    figures["cache_speedup"] = round(uncached_wall / cached_wall, 1)
    order = ["vs_raw_c16", "vs_raw_c64", "vs_raw_c256", "ratio_c64", "cache_speedup"]
    return {name: figures[name] for name in order}


def make_requests(tag: str, count: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            model=MODEL,
            messages=[
                {"role": "system", "content": "You answer questions about the weather."},
                {"role": "user", "content": f"What is the weather in city {i} ({tag})?"},
            ],
            max_tokens=64,
        )
        for i in range(count)
    ]


async def bare_run(base_url: str, requests: list[ChatRequest], concurrency: int) -> float:
    """The ceiling: aiohttp with nothing around it but JSON in and out."""
    url = f"{base_url}/chat/completions"
    bodies = [
        {
            "model": MODEL,
            "messages": r.messages,
            "temperature": r.temperature,
            "max_tokens": r.max_tokens,
        }
        for r in requests
    ]
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def post(body: dict[str, Any]) -> None:
            async with session.post(url, data=json.dumps(body).encode()) as answer:
                if answer.status != 200:
                    raise SystemExit(f"bare client: HTTP {answer.status}")
                json.loads(await answer.read())["choices"][0]["message"]

        warm = [
            dict(b, messages=[{"role": "user", "content": f"warm {i}"}])
            for i, b in enumerate(bodies[:concurrency])
        ]
        await drive(warm, concurrency, post)
        return await drive(bodies, concurrency, post)


async def fcsft_run(
    base_url: str,
    requests: list[ChatRequest],
    concurrency: int,
    cache: ResponseCache,
    *,
    expect_cached: bool = False,
) -> float:
    """fcsft's Client over the openai provider, with a response cache, as a stage uses it."""
    provider = OpenAIProvider(MODEL, base_url, max_retries=0)
    client = Client(provider, concurrency=concurrency, cache=cache)
    if not expect_cached:
        warm = [
            ChatRequest(
                model=MODEL, messages=[{"role": "user", "content": f"warm {time.time()} {i}"}]
            )
            for i in range(concurrency)
        ]
        await drive(warm, concurrency, client.chat)
    wall = await drive(requests, concurrency, client.chat)
    await client.close()
    totals = client.totals()
    if expect_cached and totals.cached != totals.requests:
        raise SystemExit(f"only {totals.cached} of {totals.requests} came from the cache")
    if totals.errors:
        raise SystemExit(f"fcsft client: {totals.errors} errors")
    return wall


async def cached_run(
    base_url: str, requests: list[ChatRequest], concurrency: int, cache_path: Path
) -> float:
    """A re-run as a new process makes it: the cache file opened afresh, every reply from it."""
    with ResponseCache(cache_path) as cache:
        return await fcsft_run(base_url, requests, concurrency, cache, expect_cached=True)


if __name__ == "__main__":
    main()
