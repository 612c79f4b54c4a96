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
        [sys.executable, str(BENCH / "run_all.py"), "bfcl_conformance"],
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
    monkeypatch, capsys
):
    runner = load("bench/run_all.py")
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
