"""`fcsft run` end to end on a mock teacher: every stage's artifacts, then a resumed no-op."""

import json
from pathlib import Path

import yaml

from clirun import fcsft
from fcsft.jsonl import read_jsonl
from pipeline_tools import revenue

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


def stats_of(run: Path, stage: str) -> dict:
    return json.loads((run / stage / "stats.json").read_text())


def question_of(record: dict) -> str:
    return next(m["content"] for m in record["messages"] if m["role"] == "user")


def calls_of(record: dict) -> list[dict]:
    return [
        {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
        for m in record["messages"]
        for c in m.get("tool_calls") or []
    ]


def said(record: dict) -> list[tuple]:
    """Each message's role, content and calls: what every export keeps of a conversation."""
    return [
        (m["role"], m.get("content"), [c["function"] for c in m.get("tool_calls") or []])
        for m in record["messages"]
    ]


def test_run_until_export_then_resume_is_a_no_op(tmp_path):
    project = write_project(tmp_path)
    # The teacher answers the question about Orrin Dynamics with a figure no tool gave.
    teacher = yaml.safe_load((tmp_path / "teacher.yaml").read_text())
    invented = {"match": "Question: What was Orrin Dynamics", "content": "It made 2222.2 million."}
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump([invented, *teacher]))
    result = fcsft("run", project, "--until", "export", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "run"
    for stage in ("expand", "tasks", "generate", "validate", "curate"):
        assert (run / stage / "_done.json").exists(), stage
    seeds = {s["id"]: s for s in read_jsonl(tmp_path / "seeds.jsonl")}
    stats = {
        stage: stats_of(run, stage)
        for stage in ("seeds", "expand", "combine", "tasks", "generate", "validate", "curate")
    }
    for stage in ("expand", "tasks", "generate", "validate", "curate"):
        out = list(read_jsonl(run / stage / "out.jsonl"))
        rejected = list(read_jsonl(run / stage / "rejected.jsonl"))
        assert (stats[stage]["out"], stats[stage]["rejected"]) == (len(out), len(rejected)), stage
        assert sum(stats[stage]["reasons"].values()) == len(rejected), stage

    # expand: every seed, plus one variation of each (rewrite 0, vary 1, combine 0)
    assert stats["seeds"]["out"] == stats["expand"]["in"] == len(seeds)
    expanded = list(read_jsonl(run / "expand/out.jsonl"))
    assert sorted(t["id"] for t in expanded) == sorted([*seeds, *(f"{s}~v1" for s in seeds)])
    for task in expanded:
        seed = task["id"].split("~")[0]
        assert task["family"] == seed and task.get("parents", [seed]) == [seed]
    assert stats["combine"]["out"] == 0

    # tasks: the union without its duplicates; a refused task names the kept one it repeats
    tasks = list(read_jsonl(run / "tasks/out.jsonl"))
    assert stats["tasks"]["in"] == len(expanded)
    assert {t.get("how", "seed") for t in tasks} == {"seed", "vary"}
    questions = [t["question"] for t in tasks]
    assert sorted(questions) == sorted({t["question"] for t in expanded})  # each once, none lost
    kept = {t["id"]: t for t in tasks}
    for entry in read_jsonl(run / "tasks/rejected.jsonl"):
        (verdict,) = entry["reasons"]
        assert verdict["rule"] == "tasks.duplicate"
        twin = verdict["reason"].split(" similar to ")[1]
        assert kept[twin]["question"] == entry["record"]["question"]

    # generate: one trajectory per task, made from the task; the seeds' plans are run for real
    generated = list(read_jsonl(run / "generate/out.jsonl"))
    assert stats["generate"]["in"] == len(tasks) == stats["generate"]["counts"]["trajectories"]
    assert sorted(g["meta"]["task_id"] for g in generated) == sorted(kept)
    for trajectory in generated:
        meta = trajectory["meta"]
        task = kept[meta["task_id"]]
        assert (meta["family"], question_of(trajectory)) == (task["family"], task["question"])
        assert calls_of(trajectory) == task["plan"]
        results = [m["content"] for m in trajectory["messages"] if m["role"] == "tool"]
        assert results == [revenue(**c["arguments"]) for c in task["plan"]]
        final = trajectory["messages"][-1]
        assert final["role"] == "assistant" and not final.get("tool_calls")
        if task.get("no_tool"):
            assert meta["id"] == f"{task['id']}#0" and final["content"] == "It is small."
        else:
            assert meta["id"] == f"{task['id']}#ref" and meta["teacher"].startswith("reference")

    # validate: the invented figure is refused with its reason, everything else passes
    (orrin,) = [g["meta"]["id"] for g in generated if "Orrin" in question_of(g)]
    (refused,) = list(read_jsonl(run / "validate/rejected.jsonl"))
    assert refused["id"] == orrin and stats["validate"]["reasons"] == {"logic.ungrounded_answer": 1}
    assert "2222.2" in refused["reasons"][0]["reason"]
    validated = [v["meta"]["id"] for v in read_jsonl(run / "validate/out.jsonl")]
    assert stats["validate"]["in"] == len(generated)
    assert sorted(validated) == sorted(
        g["meta"]["id"] for g in generated if g["meta"]["id"] != orrin
    )

    # curate: every valid trajectory kept or refused; a family stays on one side
    curated = {c["meta"]["id"]: c for c in read_jsonl(run / "curate/out.jsonl")}
    refused = [r["id"] for r in read_jsonl(run / "curate/rejected.jsonl")]
    assert stats["curate"]["in"] == len(validated)
    assert sorted([*curated, *refused]) == sorted(validated)
    sides = {}
    for record in curated.values():
        sides.setdefault(record["meta"]["family"], set()).add(record["meta"]["split"])
    assert all(len(side) == 1 for side in sides.values())
    split = {
        name: sorted(i for i, c in curated.items() if c["meta"]["split"] == name)
        for name in ("train", "test")
    }
    assert stats["curate"]["report"]["split"] == {k: len(v) for k, v in split.items()}

    # export: each split's files hold exactly its curated trajectories, line for line
    export = run / "export"
    sizes = json.loads((export / "stats.json").read_text())["report"]["sizes"]
    assert sizes == {k: len(v) for k, v in split.items()}
    for name, ids in split.items():
        metas = list(read_jsonl(export / f"{name}.meta.jsonl"))
        assert sorted(m["id"] for m in metas) == ids
        assert [m["line"] for m in metas] == list(range(1, len(ids) + 1))
        openai = list(read_jsonl(export / f"{name}.openai.jsonl"))
        sharegpt = list(read_jsonl(export / f"{name}.sharegpt.jsonl"))
        assert len(openai) == len(sharegpt) == len(ids)
        for meta, record, shared in zip(metas, openai, sharegpt, strict=True):
            assert said(record) == said(curated[meta["id"]])
            human = next(t["value"] for t in shared["conversations"] if t["from"] == "human")
            assert human == question_of(record)
    info = json.loads((export / "dataset_info.json").read_text())
    assert {v["file_name"] for v in info.values()} == {f"{n}.sharegpt.jsonl" for n in split}
    assert (export / "README.md").exists()
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
    held_out = [
        c for c in read_jsonl(tmp_path / "run/curate/out.jsonl") if c["meta"]["split"] == "test"
    ]
    # standard: every held-out trajectory that calls, its calls as gold; no ood material here
    standard = {i["id"]: (i["question"], i["gold"]) for i in items if i["layer"] == "standard"}
    assert standard == {
        c["meta"]["id"]: (question_of(c), [calls_of(c)]) for c in held_out if calls_of(c)
    }
    adversarial = [i for i in items if i["layer"] == "adversarial"]
    assert len(items) == len(standard) + len(adversarial) and len(adversarial) == 8
    assert all(i["gold"] == [] for i in adversarial)
    orrin = [{"name": "revenue", "arguments": {"company": "Orrin Dynamics"}}]

    # What each item's scores must be, from the scripts: base never calls; tuned calls
    # revenue(Orrin Dynamics) when the question says "revenue" and nothing otherwise.
    def expected(model, item):
        made = [orrin] if model == "tuned" and "revenue" in item["question"] else []
        metric = "full_call" if item["gold"] else "no_call"
        return metric, made == item["gold"]

    compare = json.loads((evaluate / "compare.json").read_text())
    for model in ("base", "tuned"):
        assert compare[model]["items"] == len(items)
        scores = {s["id"]: s for s in read_jsonl(evaluate / model / "scores.jsonl")}
        assert sorted(scores) == sorted(i["id"] for i in items)
        for item in items:
            metric, right = expected(model, item)
            assert scores[item["id"]][metric] is right, (model, item["id"])
    for layer, metric in (("standard", "full_call"), ("adversarial", "no_call")):
        chosen = [i for i in items if i["layer"] == layer]
        base = [expected("base", i)[1] for i in chosen]
        tuned = [expected("tuned", i)[1] for i in chosen]
        found = compare["layers"][layer][metric]
        assert found["n"] == len(chosen)
        assert (found["base"]["k"], found["tuned"]["k"]) == (sum(base), sum(tuned))
        assert found["gained"] == sum(t and not b for b, t in zip(base, tuned, strict=True))
        assert found["lost"] == sum(b and not t for b, t in zip(base, tuned, strict=True))
        assert found["difference"] == (sum(tuned) - sum(base)) / len(chosen)
    no_call = compare["layers"]["adversarial"]["no_call"]["difference"]
    assert f"eval adversarial: no_call {no_call:+.1%} (tuned - base)" in result.stdout
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
