"""Predictions: what a model calls for each eval item, turn by turn, resumable.

Every provider is asked the same way the model was trained: OpenAI function-calling shape
(`messages` + `tools`), which the local provider renders with `fcsft.formats.chat.text_messages`
— the function training renders with — and an API server renders with its own template. For a
model served behind an API that was trained on fcsft's tagged text (a fine-tune on vLLM, say),
`protocol="tagged"` renders the prompt with `text_messages` here and parses the reply text.
`protocol="bfcl"` and `"bfcl-fewshot"` ask in BFCL's own prompting form instead (functions in
the system prompt, calls written as Python; fcsft.evaluate.bfcl_prompt), for a base model that
was never taught fcsft's protocol.

Items are asked in the agent loop's replay mode (`fcsft.agent.replay`): an item that carries
the gold `conversation` is asked once per gold turn, each time with the gold history up to that
turn (the teacher's calls and the real tool results), so a multi-step task is scored step by
step without running tools and one early slip does not hide every later step. Replay stops at
the first turn where the model calls nothing or writes something unparseable.

A prediction is one JSON object a line:
`{"id", "layer", "kind", "turns": [[{"name", "arguments"}...] per turn], "parse_error": str |
None, "model_error": str | None, "raw": [reply text per turn], "usage": {...}, "latency_s"}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from fcsft.agent import Reply, Settings, gold_prompts, protocol_named, replay
from fcsft.errors import UserError
from fcsft.evaluate import bfcl_prompt  # noqa: F401  (registers the bfcl protocols)
from fcsft.jsonl import read_jsonl, read_numbered
from fcsft.models.base import ChatLike
from fcsft.models.client import records_at_once, replies_name
from fcsft.stage import Outcome, Stage

Protocol = Literal["native", "tagged", "bfcl", "bfcl-fewshot"]


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """The predictions of a file; one that is not a prediction is a UserError naming its line."""
    predictions = []
    for number, prediction in read_numbered(path):
        turns = prediction.get("turns") or []
        if not isinstance(prediction.get("id"), str) or not isinstance(turns, list):
            raise UserError(
                f"{path}:{number}: a prediction needs a string id (and 'turns', a list of "
                "calls per turn)"
            )
        predictions.append(prediction)
    return predictions


def answered(
    items_path: Path, predictions_path: Path
) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], list[str]]:
    """(item, prediction) for each prediction of an item still asked, and the ids of those left
    out because the model failed on them (a failed request is not an answer: nothing to
    score)."""
    items = {item["id"]: item for item in read_jsonl(items_path)}
    pairs, failed = [], []
    for prediction in read_jsonl(predictions_path):
        item = items.get(prediction["id"])
        if item is None:
            continue  # a prediction for an item no longer asked
        if prediction.get("model_error"):
            failed.append(item["id"])
            continue
        pairs.append((item, prediction))
    return pairs, failed


def item_messages(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The opening messages of an item: its own `messages`, or system + question."""
    if item.get("messages"):
        return list(item["messages"])
    opening = [{"role": "system", "content": item["system"]}] if item.get("system") else []
    return [*opening, {"role": "user", "content": item["question"]}]


def prompts(item: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The message list for each turn the model is asked: one, or one per gold turn."""
    return gold_prompts(item.get("conversation") or []) or [item_messages(item)]


async def predict_item(
    model: ChatLike,
    model_name: str,
    item: dict[str, Any],
    protocol: Protocol = "native",
    max_tokens: int = 256,
) -> dict[str, Any]:
    """Replay the item's turns to the model and record what it called; a BFCL multi-turn
    item runs live instead (fcsft.evaluate.multi_turn)."""
    if item.get("kind") == "multi_turn":
        from fcsft.evaluate.multi_turn import predict_multi_turn

        return await predict_multi_turn(model, model_name, item, protocol, max_tokens)
    run = await replay(
        model,
        protocol_named(protocol, item.get("bfcl_functions")),
        Settings(model_name, max_tokens),
        prompts(item),
        item.get("tools") or [],
    )
    answered = [reply for reply in run.replies if reply.message is not None]
    return {
        "id": item["id"],
        "layer": item.get("layer"),
        "kind": item.get("kind"),
        "turns": [calls for calls in map(Reply.calls, answered) if calls],
        "parse_error": run.error if run.stop == "parse_error" else None,
        # A failed request is not the model's answer: left out of the scores, and counted.
        "model_error": run.error if run.stop == "model_error" else None,
        "raw": [reply.raw for reply in run.replies],
        "usage": run.usage.model_dump(),
        "latency_s": run.latency_s,
    }


def prediction_outcome(prediction: dict[str, Any]) -> Outcome:
    """A prediction as a stage outcome. One the model failed on holds no answer: it is kept
    for the report, and the next run asks the model again (`Outcome.retry`)."""
    failed = bool(prediction.get("model_error"))
    return Outcome(prediction, counts=prediction["usage"], retry=failed)


def predict_stage(
    model: ChatLike,
    model_name: str,
    protocol: Protocol = "native",
    max_tokens: int = 256,
) -> Stage:
    async def process(item: dict[str, Any]) -> list[Outcome]:
        prediction = await predict_item(model, model_name, item, protocol, max_tokens)
        return [prediction_outcome(prediction)]

    return Stage(
        name="predictions",
        process=process,
        config={
            "model": replies_name(model, model_name),
            "protocol": protocol,
            "max_tokens": max_tokens,
        },
        parallel=records_at_once(model),
    )
