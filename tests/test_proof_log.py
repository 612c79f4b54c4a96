"""run.sh's command log (examples/bfcl-smollm2/log.sh): a command killed mid-run still counts
with the time it had run, and the results page marks it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

from fcsft.jsonl import read_jsonl
from script_module import load

LOG = Path(__file__).resolve().parents[1] / "examples" / "bfcl-smollm2" / "log.sh"


def test_a_command_killed_mid_run_is_logged_by_the_next_with_the_time_it_had_run(tmp_path):
    env = {**os.environ, "RUN": str(tmp_path), "BEAT": "0.2"}
    running = tmp_path / "running.json"
    killed = subprocess.Popen(
        ["bash", "-c", f"source {LOG}; run sleep 30"], env=env, start_new_session=True
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if running.exists() and json.loads(running.read_text() or "{}").get("wall_s", 0) >= 0.6:
            break
        time.sleep(0.05)
    os.killpg(killed.pid, signal.SIGKILL)  # the whole group: no trap, no last word
    killed.wait()
    assert running.exists() and not (tmp_path / "commands.jsonl").exists()

    subprocess.run(
        ["bash", "-c", f"source {LOG}; run true; run false || true"], env=env, check=True
    )
    cut, done, failed = read_jsonl(tmp_path / "commands.jsonl")
    assert cut["argv"] == ["sleep", "30"] and cut["cut_off"] is True and cut["exit"] is None
    assert 0.6 <= cut["wall_s"] < 30
    assert done["argv"] == ["true"] and done["exit"] == 0 and "cut_off" not in done
    assert failed["argv"] == ["false"] and failed["exit"] == 1
    assert not running.exists()


def test_the_commands_block_marks_a_cut_off_command_and_counts_its_time():
    results = load("examples/bfcl-smollm2/results.py")
    commands = [
        {"argv": ["fcsft", "train"], "wall_s": 3600.0, "exit": None, "cut_off": True},
        {"argv": ["fcsft", "train"], "wall_s": 1800.0, "exit": 0},
    ]
    lines = results.commands_section(SimpleNamespace(commands=commands))
    assert "fcsft train  # 3600 s, cut off" in lines
    assert "fcsft train  # 1800 s" in lines
    assert any("2 commands, 1.5 h in all" in line for line in lines)
