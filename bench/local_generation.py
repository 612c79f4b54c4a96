"""Greedy generation speed of the embedded model through the local provider, alone and batched.

Run: python bench/local_generation.py   (no arguments; about a minute on 2 idle CPU cores)

Load: `load_cold_s` converts the shipped GGUF into a fresh temporary cache and loads it (what
the first run on a machine pays); `load_warm_s` loads that converted folder again in a new
model object (what every later process pays). Both include nothing of Python's own imports:
torch and transformers are imported first.

Throughput: completion tokens over wall time, greedy, through `LocalProvider.chat` (so the
queue, the per-row stop tracking and decoding are counted). Batch 1 sends REQUESTS_B1
requests one after another; batch 32 sends 32 different prompts at once, which the provider
runs as one batch of mixed prompt lengths. Rows that end early (end of turn) leave the batch
and count only the tokens they made, as a real workload would. One warm-up request runs first.
Both of those run with `precision: auto`; `bf16_vs_fp32_b32` then runs batch 32 with bf16 and
with float32 weights and gives the ratio of their throughputs (`b32_same_text`: the share of
the 32 replies that are the same text both ways); a CPU where bf16 is refused skips both.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch  # imported before timing loads, as is transformers
import transformers  # noqa: F401

sys.path.insert(0, str(Path(__file__).parent))

from _common import bf16_refused
from fcsft.models.base import ChatRequest
from fcsft.models.local import LocalModel, LocalProvider

MAX_TOKENS = 64
REQUESTS_B1 = 2
TOPICS = [
    "the sea", "a lighthouse", "winter", "a city at night", "bees", "a train journey",
    "the moon", "a library", "rain", "a mountain village", "a robot", "an old map",
    "autumn leaves", "a market", "the desert", "a violin", "a river", "a storm",
    "a garden", "a bridge", "a clock", "a forest", "a ship", "a festival",
    "snow", "a cat", "a castle", "a kite", "an island", "a bakery", "a comet", "a farm",
]  # fmt: skip


def request(topic: str) -> ChatRequest:
    return ChatRequest(
        model="smollm2",
        messages=[{"role": "user", "content": f"Write a long, detailed story about {topic}."}],
        max_tokens=MAX_TOKENS,
    )


async def throughput(provider: LocalProvider, requests: list[ChatRequest], together: bool):
    started = time.monotonic()
    if together:
        replies = await asyncio.gather(*(provider.chat(r) for r in requests))
    else:
        replies = [await provider.chat(r) for r in requests]
    wall = time.monotonic() - started
    return sum(r.completion_tokens for r in replies) / wall, replies


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["FCSFT_CACHE"] = tmp
        started = time.monotonic()
        LocalModel("smollm2").load()
        load_cold = time.monotonic() - started
        started = time.monotonic()
        LocalModel("smollm2").load()
        load_warm = time.monotonic() - started

        provider = LocalProvider("smollm2", max_batch=32)

        async def run() -> dict[str, float]:
            await provider.chat(request("warm-up"))
            b1, _ = await throughput(provider, [request(t) for t in TOPICS[:REQUESTS_B1]], False)
            sizes = len(provider.batcher.batch_sizes)
            b32, replies = await throughput(provider, [request(t) for t in TOPICS], True)
            assert provider.batcher.batch_sizes[sizes:] == [32], provider.batcher.batch_sizes
            mean_tokens = sum(r.completion_tokens for r in replies) / len(replies)
            figures = {"tok_per_s_b1": b1, "tok_per_s_b32": b32, "mean_tokens_b32": mean_tokens}
            if bf16_refused():
                return figures
            rates, texts = {}, {}
            for precision in ("fp32", "bf16"):
                other = LocalProvider("smollm2", max_batch=32, precision=precision)
                await other.chat(request("warm-up"))
                rates[precision], replies = await throughput(
                    other, [request(t) for t in TOPICS], True
                )
                texts[precision] = [r.message["content"] for r in replies]
            same = sum(a == b for a, b in zip(texts["fp32"], texts["bf16"], strict=True))
            return {
                **figures,
                "bf16_vs_fp32_b32": rates["bf16"] / rates["fp32"],
                "b32_same_text": same / len(TOPICS),
            }

        figures = asyncio.run(run())
    figures = {
        "load_cold_s": load_cold,
        "load_warm_s": load_warm,
        **figures,
        "batch_speedup": figures["tok_per_s_b32"] / figures["tok_per_s_b1"],
        "threads": torch.get_num_threads(),
    }
    rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps({"bench": "local_generation", "figures": rounded}))


if __name__ == "__main__":
    main()
