"""Conversations as token ids with the assistant spans marked, for loss masking.

The text is what the model will be served: `text_messages` (tools in the system prompt, turns
as tagged text) through the tokenizer's own chat template. An assistant span is found by
rendering the conversation up to the turn with the generation prompt and up to and including
the turn: the difference is exactly what the model must produce, its end-of-turn token
included. An assistant turn with `weight: 0` (OpenAI's per-message weight) is rendered like
the others but not marked, so it is context and not trained on. Templates that are not
prefix-stable (some drop earlier thinking) are refused rather than trained on the wrong tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fcsft.errors import UserError
from fcsft.formats.chat import text_messages


@dataclass
class Example:
    input_ids: list[int]
    assistant_masks: list[int]  # 1 where the token is the model's to predict

    @property
    def labels(self) -> list[int]:
        return [t if m else -100 for t, m in zip(self.input_ids, self.assistant_masks, strict=True)]


def segments(tokenizer: Any, record: dict[str, Any]) -> list[tuple[str, bool]]:
    """The rendered text cut into (piece, is_assistant) in order."""
    messages = text_messages(record["messages"], record.get("tools") or None)
    # text_messages keeps the assistant messages one for one and in order.
    weights = iter(m.get("weight", 1) for m in record["messages"] if m["role"] == "assistant")
    pieces: list[tuple[str, bool]] = []
    done = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        trained = next(weights) != 0
        prompt = tokenizer.apply_chat_template(
            messages[:index], tokenize=False, add_generation_prompt=True
        )
        full = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise UserError(
                "the tokenizer's chat template re-renders earlier turns differently; "
                "fcsft cannot mark assistant spans with it (use a ChatML template)"
            )
        pieces.append((prompt[len(done) :], False))
        pieces.append((full[len(prompt) :], trained))
        done = full
    whole = tokenizer.apply_chat_template(messages, tokenize=False)
    if whole[len(done) :]:
        pieces.append((whole[len(done) :], False))
    return [(text, mark) for text, mark in pieces if text]


def render_example(
    tokenizer: Any, record: dict[str, Any], max_length: int | None = None
) -> Example:
    return tokenize_segments(tokenizer, segments(tokenizer, record), max_length)


def tokenize_segments(
    tokenizer: Any, pieces: list[tuple[str, bool]], max_length: int | None = None
) -> Example:
    """`segments`' pieces as ids, each piece on its own so no token straddles a span edge."""
    ids: list[int] = []
    mask: list[int] = []
    for text, is_assistant in pieces:
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids.extend(piece)
        mask.extend([int(is_assistant)] * len(piece))
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return Example(ids, mask)
