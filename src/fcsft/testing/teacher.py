"""A scripted teacher for the fake server, cheap tools for it to call, and a project to run.

With `FakeOpenAI(reply=two_calls_then_answer)` every task's trajectory is the same shape as a
real teacher's, at no cost: one tool call per reply, `CALLS` of them, then a final answer
built from what the tools returned. The replies depend only on the request, so a run, a
resumed run and a run on other workers all write the same records. `generate_project` writes
a project.yaml and a task file that `fcsft generate` (or `run_pipeline`) can run at once.
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
    """`CALLS` lookups, one a reply, then an answer quoting their results (the native protocol)."""
    messages = body.get("messages") or []
    question = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
    results = [m.get("content") or "" for m in messages if m.get("role") == "tool"]
    if len(results) < CALLS:
        step = len(results)
        return {
            "content": None,
            "tool_calls": [tool_call("lookup", {"key": f"{question} #{step}"}, f"call_{step}")],
        }
    return "From the records: " + "; ".join(results)


def make_tasks(count: int) -> list[Task]:
    return [
        Task(id=f"t{i:05d}", family=f"t{i:05d}", question=f"What is filed under item {i}?")
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
