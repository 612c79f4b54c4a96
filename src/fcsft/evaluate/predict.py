"""Predictions: what a model calls for each eval item, turn by turn, resumable.

Every provider is asked the same way the model was trained: OpenAI function-calling shape
(`messages` + `tools`), which the local provider renders with `fcsft.formats.chat.text_messages`
— the function training renders with — and an API server renders with its own template. For a
model served behind an API that was trained on fcsft's tagged text (a fine-tune on vLLM, say),
`protocol="tagged"` renders the prompt with `text_messages` here and parses the reply text.
`protocol="bfcl"` and `"bfcl-fewshot"` ask in BFCL's own prompting form instead (functions in
the system prompt, calls written as Python; fcsft.evaluate.bfcl_prompt), for a base model that
was never taught fcsft's protocol.

Multi-step items are replayed: an item that carries the gold `conversation` is asked once per
gold turn, each time with the gold history up to that turn (the teacher's calls and the real
tool results), so a multi-step task is scored step by step without running tools and one early
slip does not hide every later step. Replay stops at the first turn where the model calls
nothing or writes something unparseable.

A prediction is one JSON object a line:
`{"id", "layer", "kind", "turns": [[{"name", "arguments"}...] per turn], "parse_error": str |
None, "model_error": str | None, "raw": [reply text per turn], "usage": {...}, "latency_s"}`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from fcsft.errors import UserError
from fcsft.evaluate.bfcl_prompt import FORMS as BFCL_FORMS
from fcsft.evaluate.bfcl_prompt import bfcl_reply, bfcl_request
from fcsft.formats import FormatError, decode_arguments
from fcsft.formats.chat import text_messages
from fcsft.formats.tagged import parse_reply
from fcsft.jsonl import read_numbered
from fcsft.models.base import ChatLike, ChatRequest, ChatResponse, ModelError
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


def item_messages(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The opening messages of an item: its own `messages`, or system + question."""
    if item.get("messages"):
        return list(item["messages"])
    opening = [{"role": "system", "content": item["system"]}] if item.get("system") else []
    return [*opening, {"role": "user", "content": item["question"]}]


def prompts(item: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """The message list for each turn the model is asked: one, or one per gold turn."""
    conversation = item.get("conversation")
    if not conversation:
        return [item_messages(item)]
    turns = [
        index
        for index, message in enumerate(conversation)
        if message["role"] == "assistant" and message.get("tool_calls")
    ]
    return [conversation[:index] for index in turns] or [item_messages(item)]


def request_for(
    model_name: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]],
    protocol: Protocol,
    max_tokens: int,
    bfcl_functions: list[dict[str, Any]] | None = None,
) -> ChatRequest:
    if protocol in BFCL_FORMS:
        return bfcl_request(model_name, messages, tools, protocol, max_tokens, bfcl_functions)
    if protocol == "tagged":
        return ChatRequest(
            model=model_name,
            messages=text_messages(messages, tools or None),
            max_tokens=max_tokens,
            stop=["<observation"],
        )
    return ChatRequest(
        model=model_name, messages=messages, tools=tools or None, max_tokens=max_tokens
    )


def reply_calls(
    response: ChatResponse, protocol: Protocol, tools: list[dict[str, Any]] | None = None
) -> tuple[list[dict], str | None, str]:
    """(calls, parse error, raw text) of one reply."""
    if protocol in BFCL_FORMS:
        return bfcl_reply(response, tools or [])
    raw = str(response.extra.get("raw", response.message.get("content") or ""))
    if response.extra.get("parse_error"):
        return [], str(response.extra["parse_error"]), raw
    try:
        message = (
            parse_reply(response.message.get("content") or "")
            if protocol == "tagged"
            else response.message
        )
        calls = [
            {
                "name": call["function"]["name"],
                "arguments": decode_arguments(
                    call["function"].get("arguments", {}), f"tool_calls.{k}"
                ),
            }
            for k, call in enumerate(message.get("tool_calls") or [])
        ]
    except (FormatError, KeyError, TypeError) as exc:
        return [], str(exc), raw
    return calls, None, raw


async def predict_item(
    model: ChatLike,
    model_name: str,
    item: dict[str, Any],
    protocol: Protocol = "native",
    max_tokens: int = 256,
) -> dict[str, Any]:
    """Ask the model each turn of the item and record what it called."""
    turns: list[list[dict[str, Any]]] = []
    raws: list[str] = []
    error: str | None = None
    failed: str | None = None
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
    started = time.monotonic()
    for messages in prompts(item):
        request = request_for(
            model_name,
            messages,
            item.get("tools") or [],
            protocol,
            max_tokens,
            item.get("bfcl_functions"),
        )
        try:
            response = await model.chat(request)
        except ModelError as exc:
            failed = str(exc)  # not the model's answer: left out of the scores, and counted
            break
        usage["prompt_tokens"] += response.prompt_tokens
        usage["completion_tokens"] += response.completion_tokens
        usage["cost"] += float(response.extra.get("cost", 0.0))
        calls, error, raw = reply_calls(response, protocol, item.get("tools"))
        raws.append(raw)
        if error or not calls:
            break
        turns.append(calls)
    return {
        "id": item["id"],
        "layer": item.get("layer"),
        "kind": item.get("kind"),
        "turns": turns,
        "parse_error": error,
        "model_error": failed,
        "raw": raws,
        "usage": usage,
        "latency_s": round(time.monotonic() - started, 3),
    }


def predict_stage(
    model: ChatLike,
    model_name: str,
    protocol: Protocol = "native",
    max_tokens: int = 256,
    concurrency: int = 32,
) -> Stage:
    async def process(item: dict[str, Any]) -> list[Outcome]:
        prediction = await predict_item(model, model_name, item, protocol, max_tokens)
        return [Outcome(prediction, counts=prediction["usage"])]

    return Stage(
        name="predictions",
        process=process,
        config={"model": model_name, "protocol": protocol, "max_tokens": max_tokens},
        concurrency=concurrency,
    )
