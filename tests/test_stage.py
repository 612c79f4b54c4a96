import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcsft.errors import UserError
from fcsft.jsonl import write_jsonl
from fcsft.records import Verdict
from fcsft.runner.executors import executor_for
from fcsft.runner.run import run_stage
from fcsft.stage import Outcome, Stage
from kill_midway import kill_once_committed
from stage_fixture import make_stage

HERE = Path(__file__).parent


def make_input(path: Path, n: int) -> Path:
    write_jsonl(path, ({"id": f"r{i:04d}", "n": i} for i in range(n)))
    return path


def files(stage_dir: Path) -> dict[str, bytes]:
    return {name: (stage_dir / name).read_bytes() for name in ("out.jsonl", "rejected.jsonl")}


def test_outputs_rejects_and_stats(tmp_path):
    source = make_input(tmp_path / "in.jsonl", 20)
    stats = run_stage(make_stage(1), tmp_path / "run", [source])
    assert stats["in"] == 20
    assert stats["rejected"] == 4  # 0, 5, 10, 15
    assert stats["out"] == sum(1 + n % 3 for n in range(20) if n % 5)
    assert stats["reasons"] == {"fixture.multiple_of_five": 4}
    assert stats["counts"]["tokens"] == sum(n * (1 + n % 3) for n in range(20) if n % 5)
    rejected = [json.loads(line) for line in (tmp_path / "run/fixture/rejected.jsonl").open()]
    assert rejected[1]["reasons"][0]["reason"] == "5 is a multiple of five"
    assert (tmp_path / "run/fixture/_done.json").exists()


def test_done_stage_is_skipped_and_config_change_reruns(tmp_path):
    source = make_input(tmp_path / "in.jsonl", 10)
    run_stage(make_stage(1), tmp_path / "run", [source])
    ledger = tmp_path / "run/fixture/_ledger.jsonl"
    before = ledger.stat().st_mtime_ns
    run_stage(make_stage(1), tmp_path / "run", [source])
    assert ledger.stat().st_mtime_ns == before  # nothing re-done
    changed = make_stage(1)
    changed.config = {"copies": "other"}
    stats = run_stage(changed, tmp_path / "run", [source])
    assert stats["in"] == 10 and stats["attempts"] == 1
    assert ledger.stat().st_mtime_ns != before


def test_concurrent_run_writes_input_order(tmp_path):
    source = make_input(tmp_path / "in.jsonl", 60)
    run_stage(make_stage(1), tmp_path / "serial", [source])
    run_stage(make_stage(16), tmp_path / "parallel", [source])
    assert files(tmp_path / "serial/fixture") == files(tmp_path / "parallel/fixture")


@pytest.mark.parametrize("parallel", [1, 8])
def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path, parallel):
    source = make_input(tmp_path / "in.jsonl", 400)
    run_stage(make_stage(parallel), tmp_path / "clean", [source])

    run_dir = tmp_path / "killed"
    ledger = run_dir / "fixture/_ledger.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "stage_fixture.py"),
            str(run_dir),
            str(source),
            str(parallel),
        ],
        env=env,
    )
    committed = kill_once_committed(child, ledger, 100)
    assert 100 <= committed < 400, "the kill must land midway"
    # A torn write as the kill would leave it: half a line at the end of the output.
    with (run_dir / "fixture/out.jsonl").open("a") as out:
        out.write('{"id": "torn", "n"')

    stats = run_stage(make_stage(parallel), run_dir, [source])
    assert files(run_dir / "fixture") == files(tmp_path / "clean/fixture")
    assert stats["in"] == 400 and stats["attempts"] == 2
    ids = [json.loads(line)["id"] for line in (run_dir / "fixture/_ledger.jsonl").open()]
    assert len(ids) == len(set(ids)) == 400


def test_duplicate_input_id_is_a_user_error(tmp_path):
    source = tmp_path / "in.jsonl"
    write_jsonl(source, [{"id": "a", "n": 1}, {"id": "a", "n": 2}])
    with pytest.raises(UserError, match=r"in.jsonl:2: duplicate id 'a'"):
        run_stage(make_stage(1), tmp_path / "run", [source])


def test_whole_stage_sees_every_record_and_resumes(tmp_path):
    source = make_input(tmp_path / "in.jsonl", 30)

    def pairs(records):
        # Keep the first of each residue class mod 7: a decision that needs all records.
        seen, result = set(), []
        for obj in records:
            key = obj["n"] % 7
            verdicts = (
                []
                if key not in seen
                else [
                    Verdict(stage="dedup", rule="dedup.same_class", passed=False, reason=str(key))
                ]
            )
            seen.add(key)
            result.append((obj["id"], [Outcome(obj, verdicts)]))
        return result

    stage = Stage("dedup", pairs, whole=True)
    stats = run_stage(stage, tmp_path / "run", [source])
    assert (stats["in"], stats["out"], stats["rejected"]) == (30, 7, 23)
    # Simulate a crash after 10 commits: drop the later ledger lines and the marker.
    directory = tmp_path / "run/dedup"
    ledger = directory / "_ledger.jsonl"
    ledger.write_text("".join(ledger.read_text().splitlines(keepends=True)[:10]))
    (directory / "_done.json").unlink()
    before = files(directory)
    assert run_stage(stage, tmp_path / "run", [source])["in"] == 30
    assert files(directory) == before


def test_an_executor_needing_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    with pytest.raises(UserError, match=r"pip install 'fcsft\[ray\]'"):
        executor_for("ray")
    with pytest.raises(UserError, match="unknown executor 'dask'; known: local, ray"):
        executor_for("dask")


def _with_bad_lines(path: Path) -> Path:
    """Ten good records and, among them, a line of each kind that is no record."""
    good = [json.dumps({"id": f"r{i:04d}", "n": i}).encode() for i in range(10)]
    bad = [b'{"n": "caf\xe9"}', b"{torn", b'{"n": 3}', good[1], b"[1, 2]"]
    lines = good[:2] + bad[:2] + good[2:6] + bad[2:] + good[6:]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_a_set_aside_stage_rejects_bad_lines_by_number_and_processes_the_rest(tmp_path):
    source = _with_bad_lines(tmp_path / "in.jsonl")
    stage = make_stage(4)
    stage.set_aside = True
    stats = run_stage(stage, tmp_path / "run", [source])
    assert stats["in"] == 15 and stats["reasons"]["input.malformed"] == 5
    rows = [json.loads(line) for line in (tmp_path / "run/fixture/rejected.jsonl").open()]
    set_aside = [(row["id"], row["reasons"][0]["reason"]) for row in rows if row["record"] is None]
    assert set_aside == [
        ("in.jsonl:3", f"{source}:3: not valid UTF-8 at byte 10 (0xe9)"),
        (
            "in.jsonl:4",
            f"{source}:4: not valid JSON at offset 1: Expecting property name "
            "enclosed in double quotes",
        ),
        ("in.jsonl:9", f"{source}:9: record has no string 'id' (or 'meta.id')"),
        ("in.jsonl:10", f"{source}:10: duplicate id 'r0001'; ids must be unique"),
        ("in.jsonl:11", f"{source}:11: expected a JSON object, got list"),
    ]
    kept = [json.loads(line)["n"] for line in (tmp_path / "run/fixture/out.jsonl").open()]
    assert sorted(set(kept)) == [n for n in range(10) if n % 5]

    # Cut off after a few commits, the resumed run writes the same bytes.
    directory = tmp_path / "run/fixture"
    before = files(directory)
    ledger = directory / "_ledger.jsonl"
    ledger.write_text("".join(ledger.read_text().splitlines(keepends=True)[:3]))
    (directory / "_done.json").unlink()
    assert run_stage(stage, tmp_path / "run", [source])["in"] == 15
    assert files(directory) == before


def test_a_bad_input_line_stops_a_stage_before_any_work(tmp_path):
    source = _with_bad_lines(tmp_path / "in.jsonl")
    seen = []

    def process(obj):
        seen.append(obj["id"])
        return [Outcome(obj)]

    with pytest.raises(UserError, match=r"in.jsonl:3: not valid UTF-8 at byte 10"):
        run_stage(Stage("strict", process), tmp_path / "run", [source])
    assert seen == []


def test_a_rejection_without_a_reason_is_a_bug_not_a_record(tmp_path):
    source = make_input(tmp_path / "in.jsonl", 3)
    silent = Verdict(stage="s", rule="s.silent", passed=False, reason=" ")
    for outcomes in ([Outcome(None)], [Outcome({"id": "x"}, [silent])]):
        stage = Stage("silent", lambda obj, outcomes=outcomes: outcomes)
        with pytest.raises(AssertionError, match="without saying why"):
            run_stage(stage, tmp_path / "run", [source])
        assert (tmp_path / "run/silent/rejected.jsonl").read_text() == ""


def counting(stage: Stage) -> tuple[Stage, list[str]]:
    """`stage` with a list of the ids its process was called on."""
    seen: list[str] = []
    inner = stage.process

    async def process(obj):
        seen.append(obj["id"])
        return await inner(obj)

    stage.process = process
    return stage, seen


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("_done.json", "{not json"),
        ("_done.json", "[1, 2]"),
        ("stats.json", None),
        ("stats.json", '{"stage": "fix'),
        ("stats.json", '"a string"'),
    ],
)
def test_an_unreadable_marker_or_stats_file_is_recomputed_from_the_ledger(tmp_path, name, content):
    source = make_input(tmp_path / "in.jsonl", 30)
    first = run_stage(make_stage(4), tmp_path / "run", [source])
    directory = tmp_path / "run/fixture"
    before = files(directory)
    if content is None:
        (directory / name).unlink()
    else:
        (directory / name).write_text(content)
    stage, seen = counting(make_stage(4))
    again = run_stage(stage, tmp_path / "run", [source])
    assert seen == []  # nothing processed again: the ledger says it is all done
    assert again == first and json.loads((directory / "stats.json").read_text()) == first
    assert json.loads((directory / "_done.json").read_text())["key"]
    assert files(directory) == before


@pytest.mark.parametrize(
    "bad_line",
    ['{"id": "r0010"}', "[1, 2]", '{"id": 10, "out": 1, "rejected": 0, "reasons": {}}', '"r0010"'],
)
def test_a_ledger_line_of_the_wrong_shape_is_treated_like_a_torn_one(tmp_path, bad_line):
    source = make_input(tmp_path / "in.jsonl", 30)
    run_stage(make_stage(4), tmp_path / "clean", [source])
    run_stage(make_stage(4), tmp_path / "run", [source])
    directory = tmp_path / "run/fixture"
    ledger = directory / "_ledger.jsonl"
    lines = ledger.read_text().splitlines(keepends=True)
    ledger.write_text("".join([*lines[:10], bad_line + "\n", *lines[11:]]))
    (directory / "_done.json").unlink()  # as a crash would leave it
    stage, seen = counting(make_stage(4))
    stats = run_stage(stage, tmp_path / "run", [source])
    assert seen == [f"r{i:04d}" for i in range(10, 30)]  # from the bad line on, done again
    assert stats["in"] == 30 and files(directory) == files(tmp_path / "clean/fixture")
    ids = [json.loads(line)["id"] for line in ledger.open()]
    assert ids == [f"r{i:04d}" for i in range(30)]


def test_an_unreadable_state_file_is_one_line_naming_what_to_delete(tmp_path):
    source = make_input(tmp_path / "in.jsonl", 10)
    run_stage(make_stage(1), tmp_path / "run", [source])
    directory = tmp_path / "run/fixture"
    (directory / "_done.json").unlink()
    for garbage in ("{not json", "[]", '{"key": 7}'):
        (directory / "_state.json").write_text(garbage)
        before = files(directory)
        with pytest.raises(UserError) as caught:
            run_stage(make_stage(1), tmp_path / "run", [source])
        message = str(caught.value)
        assert "\n" not in message
        assert message == (
            f"{directory / '_state.json'} is unreadable, so whose output {directory} holds is "
            f"unknown; delete {directory} to run the stage afresh"
        )
        assert files(directory) == before


DOWN = {"r0003", "r0011", "r0012", "r0025"}  # inputs whose model call fails in the first run


def flaky_stage(model_up: bool) -> Stage:
    """Multiples of five are rejected for what they are (final); the inputs in DOWN fail on the
    model until it is up (to be retried)."""

    async def process(obj):
        if obj["id"] in DOWN and not model_up:
            failed = Verdict(stage="t", rule="t.model_error", passed=False, reason="HTTP 500")
            return [Outcome(obj, [failed], retry=True)]
        if obj["n"] % 5 == 0:
            final = Verdict(stage="t", rule="t.multiple_of_five", passed=False, reason="5 | n")
            return [Outcome(obj, [final])]
        return [Outcome(obj | {"answer": obj["n"] * 2})]

    return Stage("flaky", process, config={"v": 1}, parallel=4)


def test_inputs_that_failed_on_the_model_are_done_again_by_the_next_run_and_only_they(tmp_path):
    source = make_input(tmp_path / "in.jsonl", 30)
    directory = tmp_path / "run/flaky"
    first = run_stage(flaky_stage(model_up=False), tmp_path / "run", [source])
    assert first["reasons"] == {"t.multiple_of_five": 5, "t.model_error": 4}
    assert first["retry"] == 4
    assert json.loads((directory / "_done.json").read_text())["retry"] == 4
    out_before = (directory / "out.jsonl").read_text().splitlines()

    stage, seen = counting(flaky_stage(model_up=True))
    second = run_stage(stage, tmp_path / "run", [source])
    assert seen == sorted(DOWN)  # the final rejections and everything kept stay as they were
    assert (second["in"], second["out"], second["rejected"]) == (30, 24, 6)
    assert second["reasons"] == {"t.multiple_of_five": 6} and "retry" not in second
    out = (directory / "out.jsonl").read_text().splitlines()
    assert out[: len(out_before)] == out_before  # earlier output untouched, retried ones after
    retried = sorted(json.loads(line)["id"] for line in out[len(out_before) :])
    assert retried == sorted(DOWN - {"r0025"})  # r0025, up, is a multiple of five
    rejected = [json.loads(line) for line in (directory / "rejected.jsonl").open()]
    assert [r["id"] for r in rejected] == [f"r{i:04d}" for i in range(0, 30, 5)]
    ids = [json.loads(line)["id"] for line in (directory / "_ledger.jsonl").open()]
    assert len(ids) == len(set(ids)) == 30

    stage, seen = counting(flaky_stage(model_up=True))
    assert run_stage(stage, tmp_path / "run", [source]) == second and seen == []


def test_a_crash_while_taking_inputs_out_is_finished_by_the_next_run(tmp_path, monkeypatch):
    from fcsft.runner import _rewrite as _stage_rewrite

    source = make_input(tmp_path / "in.jsonl", 30)
    run_stage(flaky_stage(model_up=False), tmp_path / "clean", [source])
    run_stage(flaky_stage(model_up=True), tmp_path / "clean", [source])
    run_stage(flaky_stage(model_up=False), tmp_path / "run", [source])
    renames = []

    def crash_after_one(source_path, target_path):
        if renames:
            raise OSError("killed")
        renames.append(target_path)
        os.rename(source_path, target_path)

    monkeypatch.setattr(_stage_rewrite.os, "replace", crash_after_one)
    with pytest.raises(OSError, match="killed"):
        run_stage(flaky_stage(model_up=True), tmp_path / "run", [source])
    monkeypatch.undo()
    assert (tmp_path / "run/flaky/_rewrite.json").exists()  # one file renamed, two to go
    stage, seen = counting(flaky_stage(model_up=True))
    stats = run_stage(stage, tmp_path / "run", [source])
    assert seen == sorted(DOWN)
    assert (stats["out"], stats["rejected"]) == (24, 6)
    assert files(tmp_path / "run/flaky") == files(tmp_path / "clean/flaky")
