import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fcsft.errors import UserError
from fcsft.executors import executor_for
from fcsft.jsonl import write_jsonl
from fcsft.records import Verdict
from fcsft.stage import Outcome, Stage, run_stage
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


@pytest.mark.parametrize("concurrency", [1, 8])
def test_sigkill_midway_then_resume_equals_uninterrupted(tmp_path, concurrency):
    source = make_input(tmp_path / "in.jsonl", 400)
    run_stage(make_stage(concurrency), tmp_path / "clean", [source])

    run_dir = tmp_path / "killed"
    ledger = run_dir / "fixture/_ledger.jsonl"
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    child = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "stage_fixture.py"),
            str(run_dir),
            str(source),
            str(concurrency),
        ],
        env=env,
    )
    committed = kill_once_committed(child, ledger, 100)
    assert 100 <= committed < 400, "the kill must land midway"
    # A torn write as the kill would leave it: half a line at the end of the output.
    with (run_dir / "fixture/out.jsonl").open("a") as out:
        out.write('{"id": "torn", "n"')

    stats = run_stage(make_stage(concurrency), run_dir, [source])
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
