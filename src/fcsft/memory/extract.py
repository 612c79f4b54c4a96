"""Turning messages into memories: with a model (structured output), or from validation stats.

Both produce `Memory` records that the writer merges; empty and duplicate memories are
rejected before they reach it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcsft.errors import UserError
from fcsft.formats.json_text import JsonProblem, loads_lenient
from fcsft.jsonl import read_jsonl
from fcsft.memory.writer import Memory
from fcsft.models.ask import ask

EXTRACT_PROMPT = """\
Read these messages and list the lessons worth remembering for future work: facts, \
preferences, recurring mistakes and their fixes. Skip anything trivial or already obvious.

{messages}

Reply with JSON only: {{"memories": [{{"topic": "...", "text": "...", "why": "..."}}]}}"""


def clean(memories: Sequence[Memory]) -> list[Memory]:
    """Drop empty memories and repeats within one batch."""
    seen, out = set(), []
    for memory in memories:
        key = (memory.topic.strip().lower(), memory.text.strip().lower())
        if not memory.text.strip() or not memory.topic.strip() or key in seen:
            continue
        seen.add(key)
        out.append(Memory(memory.topic.strip(), memory.text.strip(), memory.why.strip()))
    return out


async def extract_with_model(
    model: Any, model_name: str, messages: Sequence[dict[str, Any]]
) -> list[Memory]:
    """Ask a model for memories; a reply that is not the asked-for JSON raises ValueError."""
    text = "\n".join(f"{m.get('role', '?')}: {m.get('content', '')}" for m in messages)
    answer = await ask(model, model_name, EXTRACT_PROMPT.format(messages=text), temperature=0.0)
    if answer.error:
        raise ValueError(answer.error)
    start, end = answer.text.find("{"), answer.text.rfind("}")
    try:
        data = loads_lenient(answer.text[start : end + 1]) if start >= 0 else None
    except JsonProblem as exc:
        raise ValueError(f"memory extraction reply is not JSON: {exc}") from None
    items = data.get("memories") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ValueError("memory extraction reply has no 'memories' list")
    return clean(
        [
            Memory(str(i.get("topic", "")), str(i.get("text", "")), str(i.get("why", "")))
            for i in items
            if isinstance(i, dict)
        ]
    )


def lessons_from_validation(stage_dir: Path, top: int = 5) -> list[Memory]:
    """Teacher lessons from what validation rejected most: the rule, the share, an example."""
    if not (stage_dir / "stats.json").is_file():
        raise UserError(
            f"{stage_dir}: not a finished validate stage (no stats.json); "
            "pass the folder `fcsft validate --out` wrote, or RUN_DIR/validate"
        )
    stats = json.loads((stage_dir / "stats.json").read_text())
    rejections = [row["reasons"] for row in read_jsonl(stage_dir / "rejected.jsonl")]
    return lessons_from_rejections(rejections, stats.get("in", 0), top)


def lessons_from_rejections(
    rejections: Sequence[Sequence[dict[str, Any]]], total: int, top: int = 5
) -> list[Memory]:
    """Teacher lessons from rejected trajectories (each a list of failed verdicts as JSON) out
    of `total` checked: the `top` rules by count with advice and an example, and the schema
    details seen at least twice."""
    total = total or 1
    examples: dict[str, str] = {}
    rules: Counter = Counter()
    details: Counter = Counter()
    for reasons in rejections:
        for reason in reasons:
            rules[reason["rule"]] += 1
            examples.setdefault(reason["rule"], reason["reason"])
            if reason["rule"] in _SCHEMA_RULES:
                for part in reason["reason"].split("; "):
                    details[(reason["rule"], part.split(": ", 1)[-1])] += 1
    memories = []
    for rule, count in sorted(rules.items(), key=lambda kv: (-kv[1], kv[0]))[:top]:
        advice = ADVICE.get(rule, "avoid this mistake")
        example = examples.get(rule, "")
        memories.append(
            Memory(
                "teacher",
                f"{advice} ({rule})",
                f"{count} of {total} trajectories rejected; e.g. {example[:120]}",
            )
        )
    for (rule, detail), count in details.most_common(top):
        if count >= 2:
            memories.append(
                Memory("teacher", f"Check your calls: {detail}", f"{rule} seen {count} times")
            )
    return clean(memories)


_SCHEMA_RULES = {
    "format.missing_required",
    "format.unknown_param",
    "format.unknown_tool",
    "format.bad_type",
}

ADVICE = {
    "format.parse": "Write each call as one JSON object with double-quoted keys",
    "format.unknown_tool": "Only call the tools that are listed",
    "format.missing_required": "Always pass every required parameter",
    "format.bad_type": "Give each argument the type and allowed value the schema states",
    "format.unknown_param": "Use only the parameter names the schema defines",
    "logic.too_few_steps": "Use a tool before answering questions that need data",
    "logic.too_many_steps": "Plan the calls first; stop searching once the answer is found",
    "logic.no_final_answer": "Always finish with a final answer",
    "logic.redundant_call": "Do not repeat a call with the same arguments",
    "logic.ignored_error": "When a call fails, say so or try another way",
    "logic.ungrounded_answer": "Only state numbers and names that the tool results contain",
    "logic.should_not_call": "Answer simple questions directly without tools",
}
