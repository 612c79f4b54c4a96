"""A scripted teacher for the fake server, cheap tools for it to call, and a project to run.

With `FakeOpenAI(reply=two_calls_then_answer)` every task's trajectory is the same shape as a
real teacher's, at no cost: one tool call per reply, `CALLS` of them, then a final answer
built from what the tools returned; in a conversation, the same for each user message. The
replies depend only on the request, so a run, a resumed run and a run on other workers all
write the same records. `generate_project` writes a project.yaml and a task file that
`fcsft generate` (or `run_pipeline`) can run at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fcsft.jsonl import write_jsonl
from fcsft.records import Task
from fcsft.testing.fake_openai import tool_call

CALLS = 2
TOOLS = ["fcsft.testing.teacher:lookup"]


def lookup(key: str) -> str:
    """The value filed under a key.

    Args:
        key: What to look up.
    """
    return f"{key}: {sum(map(ord, key)) % 997}"


def two_calls_then_answer(body: dict[str, Any]) -> str | dict[str, Any]:
    """`CALLS` lookups, one a reply, then an answer quoting their results (the native protocol);
    in a conversation, so for each user message in turn."""
    messages = body.get("messages") or []
    users = [k for k, m in enumerate(messages) if m.get("role") == "user"] or [0]
    question = messages[users[-1]].get("content") or "" if messages else ""
    results = [m.get("content") or "" for m in messages[users[-1] :] if m.get("role") == "tool"]
    if len(results) < CALLS:
        step = len(results)
        # Ids are unique in the conversation: numbered on from the calls of earlier turns.
        ident = f"call_{CALLS * (len(users) - 1) + step}"
        return {
            "content": None,
            "tool_calls": [tool_call("lookup", {"key": f"{question} #{step}"}, ident)],
        }
    return "From the records: " + "; ".join(results)


def make_tasks(count: int, followups: int = 0) -> list[Task]:
    """`count` tasks, each a conversation of 1 + `followups` user turns."""
    return [
        Task(
            id=f"t{i:05d}",
            family=f"t{i:05d}",
            question=f"What is filed under item {i}?",
            followups=[f"And under item {i}, part {k}?" for k in range(1, followups + 1)],
        )
        for i in range(count)
    ]


def generate_project(
    root: Path,
    model_uri: str,
    tasks: list[Task],
    *,
    model: dict[str, Any] | None = None,
    **generate: Any,
) -> Path:
    """project.yaml in `root` (run directory `root/run`, tasks already expanded): the teacher
    at `model_uri` with `model` settings, the `lookup` tool, and `generate` settings over
    defaults (the native protocol) with no reference teacher."""
    config = {
        "name": "generate-fixture",
        "run_dir": "run",
        "models": {"teacher": {"uri": model_uri, **(model or {})}},
        "tools": TOOLS,
        "generate": {"protocol": "native", "reference": "off", **generate},
    }
    write_jsonl(root / "run" / "tasks" / "out.jsonl", (t.to_json() for t in tasks))
    path = root / "project.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path
