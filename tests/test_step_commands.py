"""Every registered step, fcsft's own or a plugin's, is a target of `fcsft run --until` and
`--from`, and one without a command of its own is the command `fcsft STEP project.yaml`."""

from pathlib import Path

from clirun import fcsft
from fcsft.jsonl import read_jsonl
from test_pipeline import write_project


def with_plugin(root: Path) -> dict[str, str]:
    """The environment of a Python that has a distribution registering tests/step_plugin.py
    under `fcsft.steps`, as `pip install` of a plugin package would leave it."""
    dist = root / "site" / "shout_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: shout-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fcsft.steps]\nshout = step_plugin\n")
    return {"PYTHONPATH": str(root / "site")}


def test_a_plugin_step_is_a_command_and_a_target_of_until(tmp_path):
    project = write_project(tmp_path)
    env = with_plugin(tmp_path)
    listed = fcsft("--help", env=env, cwd=tmp_path, timeout=300)
    assert listed.returncode == 0 and "shout" in listed.stdout
    assert "Every seed's question in capitals." in listed.stdout

    result = fcsft("run", project, "--until", "shout", env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    seeds = list(read_jsonl(tmp_path / "run/seeds/out.jsonl"))
    shouted = list(read_jsonl(tmp_path / "run/shout/out.jsonl"))
    assert [s["question"].upper() for s in seeds] == [s["question"] for s in shouted]
    assert not (tmp_path / "run/generate").exists()  # nothing after the step asked for

    (tmp_path / "run/shout").rename(tmp_path / "first")
    alone = fcsft("shout", project, env=env, cwd=tmp_path, timeout=300)
    assert alone.returncode == 0, alone.stderr[-2000:]
    assert list(read_jsonl(tmp_path / "run/shout/out.jsonl")) == shouted
    assert "shout" in alone.stdout and "expand" not in alone.stdout  # that step alone


def test_run_until_each_registered_step_runs_it_after_what_it_reads(tmp_path, monkeypatch):
    from fcsft.config import load_config
    from fcsft.runner.pipeline import Run, run_pipeline
    from fcsft.step import steps

    ran: list[str] = []
    monkeypatch.setattr(Run, "step", lambda run, entry: ran.append(entry.name))
    project = load_config(write_project(tmp_path))
    manual = {entry.name for entry in steps() if entry.manual}
    assert manual == {"review"}  # run by a person: --until passes over it
    for entry in steps():
        ran.clear()
        run_pipeline(Run(project, tmp_path), until=entry.name)
        assert len(set(ran)) == len(ran) and not manual & set(ran)
        if entry.name not in manual:
            assert ran[-1] == entry.name
        for position, name in enumerate(ran):
            reads = {e.reads for e in steps() if e.name == name}.pop()
            assert set(reads) - manual <= set(ran[:position]), (entry.name, name)
        assert set(entry.reads) - manual <= set(ran)


def test_a_step_without_a_command_of_its_own_runs_alone(tmp_path):
    project = write_project(tmp_path)
    assert fcsft("run", project, "--until", "combine", cwd=tmp_path, timeout=300).returncode == 0
    result = fcsft("tasks", project, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run/tasks/_done.json").exists()
    assert not (tmp_path / "run/generate").exists()
