"""`fcsft run` end to end on a mock teacher: every stage's artifacts, then a resumed no-op."""

import json
from pathlib import Path

import yaml

from clirun import fcsft
from fcsft.jsonl import read_jsonl

HERE = Path(__file__).parent


def write_project(root: Path) -> Path:
    seeds = [
        {
            "id": f"s{i}",
            "question": f"What was {company} revenue in fiscal 2025?",
            "source": "expert",
            "plan": [{"name": "revenue", "arguments": {"company": company}}],
        }
        for i, company in enumerate(["Orrin Dynamics", "Vellum Bank", "Kestrel Mining"])
    ] + [{"id": "s3", "question": "What is 2 plus 2?", "source": "log", "tags": ["no_tool"]}]
    (root / "seeds.jsonl").write_text("".join(json.dumps(s) + "\n" for s in seeds))
    replies = [{"match": "Tool results", "content": "The filing gives the figure above."}] * 12
    replies += [{"match": " plus ", "content": "<final_answer>It is small.</final_answer>"}] * 4
    (root / "teacher.yaml").write_text(yaml.safe_dump(replies))
    config = {
        "name": "mini",
        "run_dir": "run",
        "models": {"teacher": {"uri": "mock:teacher.yaml"}},
        "seeds": {"files": ["seeds.jsonl"], "domain": "finance"},
        "tools": ["pipeline_tools:revenue"],
        "expand": {
            "rewrite": 0,
            "vary": 1,
            "combine": 0,
            "pools": {"company": ["Orrin Dynamics", "Vellum Bank", "Kestrel Mining"]},
        },
        "validate": {"min_steps": 2},
        "curate": {"test_share": 0.3},
        "export": {"formats": ["openai", "sharegpt"]},
    }
    path = root / "project.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_run_until_export_then_resume_is_a_no_op(tmp_path):
    project = write_project(tmp_path)
    result = fcsft("run", project, "--until", "export", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "run"
    for stage in ("expand", "tasks", "generate", "validate", "curate"):
        assert (run / stage / "_done.json").exists(), stage
    tasks = list(read_jsonl(run / "tasks/out.jsonl"))
    assert {t.get("how", "seed") for t in tasks} == {"seed", "vary"}
    generated = list(read_jsonl(run / "generate/out.jsonl"))
    assert len(generated) == len(tasks)
    reference = [g for g in generated if g["meta"]["teacher"].startswith("reference")]
    assert reference and all(g["messages"][-1]["role"] == "assistant" for g in reference)
    assert "fiscal 2025 revenue" in reference[0]["messages"][3]["content"]
    validated = json.loads((run / "validate/stats.json").read_text())
    curated = json.loads((run / "curate/stats.json").read_text())
    assert curated["in"] == validated["out"]
    export = run / "export"
    sizes = json.loads((export / "stats.json").read_text())["report"]["sizes"]
    assert sizes == curated["report"]["split"]
    assert (export / "README.md").exists() and (export / "dataset_info.json").exists()
    # A second run finds every stage done and asks the teacher nothing.
    before = (run / "generate/_ledger.jsonl").read_bytes()
    again = fcsft("run", project, "--until", "export", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run / "generate/_ledger.jsonl").read_bytes() == before


def test_unknown_stage_and_missing_model_are_one_line_errors(tmp_path):
    project = write_project(tmp_path)
    result = fcsft("run", project, "--until", "deploy", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown step 'deploy'")
    config = yaml.safe_load(project.read_text())
    config["models"] = {}
    project.write_text(yaml.safe_dump(config))
    result = fcsft("run", project, "--from", "expand", "--until", "expand", cwd=tmp_path)
    assert result.returncode == 2
    assert "models.teacher is not configured" in result.stderr


def test_a_stage_whose_input_is_missing_says_which_to_run_first(tmp_path):
    project = write_project(tmp_path)
    result = fcsft("run", project, "--from", "curate", "--until", "curate", cwd=tmp_path)
    assert result.returncode == 2
    assert "fcsft run --until validate" in result.stderr.strip().splitlines()[-1]


def test_lessons_between_two_teacher_runs_show_both_rejection_rates(tmp_path):
    project = write_project(tmp_path)
    config = yaml.safe_load(project.read_text())
    config["validate"] = {"min_steps": 3}  # a call and an answer are too few: lessons to learn
    project.write_text(yaml.safe_dump(config))
    first = fcsft("run", project, "--until", "validate", cwd=tmp_path, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    lessons = fcsft("memory", "lessons", "run/validate", "--dir", "memory", cwd=tmp_path)
    assert lessons.returncode == 0, lessons.stderr
    second = fcsft("run", project, "--until", "validate", cwd=tmp_path, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "teacher attempt 1 (0 lessons)" in second.stdout
    assert "teacher attempt 2 (" in second.stdout
    history = list(read_jsonl(tmp_path / "run" / "lessons-history.jsonl"))
    assert [len(h["lessons"]) > 0 for h in history] == [False, True]
    generated = list(read_jsonl(tmp_path / "run" / "generate" / "out.jsonl"))
    system = generated[0]["messages"][0]["content"]
    assert "Lessons from earlier runs:" in system and history[1]["lessons"][0] in system


def test_evaluate_compares_the_models_on_the_runs_test_layers(tmp_path):
    project = write_project(tmp_path)
    replies = [
        {
            "match": "revenue",
            "tool_calls": [{"name": "revenue", "arguments": {"company": "Orrin Dynamics"}}],
        }
    ] * 40 + ["No tool needed."] * 40
    (tmp_path / "tuned.yaml").write_text(yaml.safe_dump(replies))
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(["I cannot look that up."] * 80))
    config = yaml.safe_load(project.read_text())
    config["evaluate"] = {"model": "mock:tuned.yaml", "base": "mock:base.yaml", "adversarial": 8}
    project.write_text(yaml.safe_dump(config))
    assert fcsft("run", project, "--until", "export", cwd=tmp_path, timeout=300).returncode == 0
    result = fcsft("run", project, "--from", "evaluate", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    evaluate = tmp_path / "run" / "evaluate"
    items = list(read_jsonl(evaluate / "testset.jsonl"))
    assert {i["layer"] for i in items} >= {"adversarial"}
    compare = json.loads((evaluate / "compare.json").read_text())
    assert compare["layers"]["adversarial"]["no_call"]["n"] == 8
    assert (evaluate / "compare.html").exists() and "report:" in result.stdout


def test_every_registered_step_can_end_a_run_and_runs_in_the_order_it_reads():
    from fcsft.step import get_step, steps

    order = [s.name for s in steps()]
    assert order[:6] == ["seeds", "expand", "combine", "tasks", "generate", "validate"]
    assert order.index("review") < order.index("curate") < order.index("export")
    assert order.index("train") < order.index("evaluate")
    for entry in steps():
        assert all(order.index(read) < order.index(entry.name) for read in entry.reads)
        assert get_step(entry.name) is entry  # what --from and --until take


def test_until_each_step_stops_after_it_and_every_step_writes_its_marker(tmp_path):
    from fcsft.config import load_config
    from fcsft.runner.pipeline import Run, run_pipeline

    project = write_project(tmp_path)
    expected = ["seeds", "expand", "combine", "tasks", "generate", "validate", "curate", "export"]
    for last, name in enumerate(expected):
        results = run_pipeline(Run(load_config(project), tmp_path), until=name)
        assert list(results) == expected[: last + 1]
    for name in expected:
        folder = tmp_path / "run" / name
        for part in ("out.jsonl", "rejected.jsonl", "stats.json", "_done.json"):
            assert (folder / part).exists(), (name, part)


def test_seeds_cut_by_limit_and_bad_rows_are_rejected_with_their_reasons(tmp_path):
    project = write_project(tmp_path)
    with (tmp_path / "seeds.jsonl").open("a") as seeds:
        seeds.write('{"id": "s9"}\n')  # no question
    config = yaml.safe_load(project.read_text())
    config["seeds"]["limit"] = 3
    project.write_text(yaml.safe_dump(config))
    result = fcsft("run", project, "--until", "seeds", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "run" / "seeds"
    assert [s["id"] for s in read_jsonl(folder / "out.jsonl")] == ["s0", "s1", "s2"]
    rejected = {r["id"]: r for r in read_jsonl(folder / "rejected.jsonl")}
    assert rejected["s3"]["reasons"][0]["rule"] == "seeds.limit"
    assert rejected["s3"]["record"]["question"] == "What is 2 plus 2?"
    (bad,) = [r for r in rejected.values() if r["reasons"][0]["rule"] == "seeds.malformed"]
    assert bad["id"].endswith("seeds.jsonl:5") and "question" in bad["reasons"][0]["reason"]
    stats = json.loads((folder / "stats.json").read_text())
    assert (stats["in"], stats["out"], stats["rejected"]) == (5, 3, 2)
    assert stats["reasons"] == {"seeds.limit": 1, "seeds.malformed": 1}
