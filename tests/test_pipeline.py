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
    sizes = json.loads((export / "stats.json").read_text())["sizes"]
    assert sizes == curated["report"]["split"]
    assert (export / "DATASET.md").exists() and (export / "dataset_info.json").exists()
    # A second run finds every stage done and asks the teacher nothing.
    before = (run / "generate/_ledger.jsonl").read_bytes()
    again = fcsft("run", project, "--until", "export", cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (run / "generate/_ledger.jsonl").read_bytes() == before


def test_unknown_stage_and_missing_model_are_one_line_errors(tmp_path):
    project = write_project(tmp_path)
    result = fcsft("run", project, "--until", "deploy", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: unknown stage 'deploy'")
    config = yaml.safe_load(project.read_text())
    config["models"] = {}
    project.write_text(yaml.safe_dump(config))
    result = fcsft("run", project, "--from", "expand", "--until", "expand", cwd=tmp_path)
    assert result.returncode == 2
    assert "models.teacher is not configured" in result.stderr
