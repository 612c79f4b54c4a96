"""Did the lessons help? One line per teacher attempt: its lessons and its rejection rate.

A run's generate stage runs again whenever its config changes, and new lessons change it, so
each distinct generate key is one attempt. After validation the pipeline appends the attempt
to `RUN_DIR/lessons-history.jsonl` (once: a skipped, unchanged stage adds nothing), and the
run summary and the dataset card show the rates side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fcsft.intervals import wilson
from fcsft.jsonl import dumps, read_json_object, read_jsonl

HISTORY = "lessons-history.jsonl"


def _key(stage_dir: Path) -> str | None:
    done = read_json_object(stage_dir / "_done.json") or {}
    key = done.get("key")
    return key if isinstance(key, str) else None


def record_attempt(run_dir: Path, lessons: list[str]) -> list[dict[str, Any]]:
    """Append the finished generate + validate pair if it is new; returns the whole history."""
    path = run_dir / HISTORY
    history = list(read_jsonl(path)) if path.exists() else []
    key = _key(run_dir / "generate")
    stats_path = run_dir / "validate" / "stats.json"
    if key is None or not stats_path.exists():
        return history
    if any(entry["generate_key"] == key for entry in history):
        return history
    stats = json.loads(stats_path.read_text())
    rate = wilson(int(stats.get("rejected", 0)), int(stats.get("in", 0)))
    entry = {
        "attempt": len(history) + 1,
        "generate_key": key,
        "lessons": lessons,
        "in": stats.get("in", 0),
        "rejected": stats.get("rejected", 0),
        "rejection_rate": rate.to_json(),
        "reasons": stats.get("reasons", {}),
    }
    with path.open("a", encoding="utf-8") as handle:
        handle.write(dumps(entry) + "\n")
    return [*history, entry]


def history_lines(history: list[dict[str, Any]]) -> list[str]:
    """One readable line per attempt, e.g. `attempt 2 (5 lessons): 12/31 rejected (38.7%, ...)`."""
    lines = []
    for entry in history:
        rate = entry["rejection_rate"]
        low, high = rate["ci95"]
        lines.append(
            f"attempt {entry['attempt']} ({len(entry['lessons'])} lessons): "
            f"{entry['rejected']}/{entry['in']} rejected ({rate['value']:.1%}, 95% CI "
            f"{low:.1%}-{high:.1%})"
        )
    return lines
