"""bench/run_all.py: every figure beside its target, a JSON summary, and the exit status."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from script_module import load

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_every_bench_script_has_targets_and_every_target_a_bench():
    runner = load("bench/run_all.py")
    scripts = {p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_")} - {"run_all"}
    assert set(runner.TARGETS) == scripts


def test_a_real_bench_runs_and_its_figures_meet_their_targets():
    pytest.importorskip("bfcl_eval")
    result = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--no-keep", "bfcl_conformance"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert result.returncode == 0, result.stdout + result.stderr
    assert summary["bench"] == "all" and summary["missed"] == [] and summary["failed"] == []
    assert summary["figures"]["bfcl_conformance.pairs"] > 20_000
    assert "agreement" in result.stdout and ">= 0.999" in result.stdout


def test_a_missed_target_a_missing_figure_and_a_failed_bench_set_the_exit_status(
    monkeypatch, capsys, tmp_path
):
    runner = load("bench/run_all.py")
    monkeypatch.setattr(runner, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(runner, "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text(f"{runner.TABLE[0]}\n{runner.TABLE[1]}\n")
    reports = {
        "client_throughput": {"vs_raw_c64": 0.95, "vs_raw_c256": 0.8, "ratio_c64": 0.9},
        "validate_speed": {"per_core_per_s": 3000, "peak_rss_mb_1k": 50, "peak_rss_mb_10k": 90},
        "train_speed": None,
    }
    monkeypatch.setattr(runner, "run_bench", lambda name: (reports[name], 1.0, "boom"))
    assert runner.main(list(reports)) == 1
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["missed"] == [
        "client_throughput.vs_raw_c256",
        "client_throughput.cache_speedup",  # the bench did not print it
        "validate_speed.peak_rss_mb_10k",  # 90 > 1.25 x 50: memory grew with the input
    ]
    assert summary["failed"] == ["train_speed"]
    assert summary["figures"]["client_throughput.ratio_c64"] == 0.9  # no target: reported
    assert runner.main(["nonesuch"]) == 2


def test_the_readme_table_is_written_from_the_kept_figures(monkeypatch, capsys, tmp_path):
    runner = load("bench/run_all.py")
    monkeypatch.setattr(runner, "RESULTS", tmp_path / "results")
    readme = tmp_path / "README.md"
    monkeypatch.setattr(runner, "README", readme)
    readme.write_text(f"intro\n{runner.TABLE[0]}\n| old | 9.99 |\n{runner.TABLE[1]}\nrest\n")
    reports = {
        "eval_speed": {"bfcl_vs_naive": 6.25, "mmlu_vs_naive": 3.5, "bfcl_items_per_s": 0.75}
    }
    monkeypatch.setattr(runner, "run_bench", lambda name: (reports[name], 61.0, ""))
    assert runner.main(["eval_speed"]) == 1
    kept = json.loads((tmp_path / "results" / "eval_speed.json").read_text())
    assert kept["figures"] == reports["eval_speed"] and kept["wall_s"] == 61.0
    assert "cores" in kept["machine"] and kept["commit"] and kept["date"]
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nrest\n") and "9.99" not in text
    assert "| `eval_speed.py` | bfcl_vs_naive | 6.25 | >= 6 (met) |" in text
    assert "| `eval_speed.py` | mmlu_vs_naive | 3.5 | >= 4 (missed) |" in text
    assert "| `eval_speed.py` | bfcl_items_per_s | 0.75 | - |" in text
    assert "| `validate_speed.py` | not run since its figures were kept |" in text

    readme.write_text(f"{runner.TABLE[0]}\n{runner.TABLE[1]}\n")
    assert runner.main(["--table"]) == 0  # from the kept files, running nothing
    assert "| mmlu_vs_naive | 3.5 |" in readme.read_text()
    trial = dict(reports["eval_speed"], bfcl_vs_naive=1.0)
    monkeypatch.setattr(runner, "run_bench", lambda name: (trial, 5.0, ""))
    runner.main(["--no-keep", "eval_speed"])
    assert json.loads((tmp_path / "results" / "eval_speed.json").read_text())["wall_s"] == 61.0


def test_the_committed_readme_table_is_the_one_the_kept_figures_give():
    runner = load("bench/run_all.py")
    text = runner.README.read_text()
    assert runner.with_block(text, *runner.TABLE, runner.table()) == text
