"""The lessons history: one entry per distinct teacher attempt, with its rejection rate."""

import json

from fcsft.memory.history import history_lines, record_attempt


def finish(run_dir, key, n_in, rejected):
    (run_dir / "generate").mkdir(parents=True, exist_ok=True)
    (run_dir / "validate").mkdir(parents=True, exist_ok=True)
    (run_dir / "generate" / "_done.json").write_text(json.dumps({"key": key}))
    stats = {"in": n_in, "rejected": rejected, "reasons": {"logic.ungrounded_answer": rejected}}
    (run_dir / "validate" / "stats.json").write_text(json.dumps(stats))


def test_each_attempt_is_recorded_once_with_its_lessons_and_rate(tmp_path):
    assert record_attempt(tmp_path, []) == []  # nothing generated yet
    finish(tmp_path, "k1", 31, 16)
    first = record_attempt(tmp_path, [])
    again = record_attempt(tmp_path, [])  # a skipped, unchanged stage adds nothing
    assert first == again and len(first) == 1
    finish(tmp_path, "k2", 31, 9)
    history = record_attempt(tmp_path, ["Only state numbers the tool results contain"])
    assert [h["attempt"] for h in history] == [1, 2]
    assert [h["rejected"] for h in history] == [16, 9]
    assert history[1]["lessons"] == ["Only state numbers the tool results contain"]
    assert history[0]["rejection_rate"]["value"] == round(16 / 31, 4)
    lines = history_lines(history)
    assert lines[0].startswith("attempt 1 (0 lessons): 16/31 rejected (51.6%")
    assert lines[1].startswith("attempt 2 (1 lessons): 9/31 rejected (29.0%")
