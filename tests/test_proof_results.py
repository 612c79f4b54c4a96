"""The proof page (examples/bfcl-smollm2/results.py): every number on docs/results.md and in
docs/results.json comes from the run's files, on a small run made here with scripted models."""

import json
import re
import shutil
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from fcsft.benchmarks import bfcl
from fcsft.evaluate import bfcl_prompt
from fcsft.evaluate.report import compare, report
from fcsft.evaluate.run import EvalPlan, evaluate
from fcsft.jsonl import read_jsonl, write_json, write_jsonl
from fcsft.runner.run import run_stage
from script_module import load
from test_eval_report import items as layer_items
from test_eval_report import prediction

pytest.importorskip("bfcl_eval")

FIXTURE = Path(__file__).parent / "data" / "bfcl"
BOIL = {
    "match": "kettle",
    "tool_calls": [{"name": "kitchen_boil_time", "arguments": {"litres": 2.0, "power_kw": 3}}],
}
CONVERT = {
    "match": "Celsius",
    "tool_calls": [
        {"name": "convert_temperature", "arguments": {"value": 30.0, "to": "fahrenheit"}}
    ],
}
WEATHER = {
    "match": "Oslo",
    "tool_calls": [
        {"name": "weather_now", "arguments": {"city": "Oslo"}},
        {"name": "weather_now", "arguments": {"city": "Lima"}},
    ],
}
LOUD = {"match": "Another", "tool_calls": [{"name": "weather_now", "arguments": {"city": "Rome"}}]}
QUIET = "No function fits this."
SCRIPTS = {  # eval directory: (protocol, replies)
    "eval-base-tagged": ("native", [QUIET] * 6),
    "eval-base-bfcl": (
        "bfcl",
        [{"match": "kettle", "content": "[kitchen.boil_time(litres=2.0, power_kw=3)]"}]
        + [QUIET] * 6,
    ),
    # A call that cannot be read: on irrelevance BFCL counts it as no call, fcsft as a failure.
    "eval-base-bfcl-fewshot": ("bfcl-fewshot", ["weather_now(city="] * 6),
    "eval-tuned-s0": ("native", [BOIL, CONVERT, WEATHER, *[QUIET] * 3]),
    "eval-tuned-s1": ("native", [BOIL, WEATHER, LOUD, *[QUIET] * 3]),
    "eval-tuned-s2": ("native", [BOIL, CONVERT, *[QUIET] * 4]),
}


def mmlu(correct_every: int, n: int = 60) -> list[dict]:
    return [
        {
            "id": f"mmlu-{k}",
            "topic": "t",
            "letter": int(k % 4 == 0),
            "cloze": int(k % correct_every != 0),
        }
        for k in range(n)
    ]


def make_run(root: Path, scripts: Path) -> None:
    """A complete small proof run: three base forms, three seeds, comparisons, stage stats,
    the contamination list, training summaries, a dev evaluation and the command log."""
    scripts.mkdir()
    for name, (protocol, replies) in SCRIPTS.items():
        (scripts / f"{name}.yaml").write_text(yaml.safe_dump(replies))
        plan = EvalPlan(
            model=f"mock:{scripts / f'{name}.yaml'}",
            out_dir=root / name,
            bfcl=["simple_python", "parallel", "irrelevance"],
            split="test",
            protocol=protocol,
            command=f"fcsft eval --protocol {protocol} --split test --out {name}",
        )
        evaluate(plan, run_stage)
    marks = {
        "eval-base-tagged": mmlu(3),
        "eval-tuned-s0": mmlu(4),
        "eval-tuned-s1": mmlu(3),
        "eval-tuned-s2": mmlu(5),
    }
    for name, rows in marks.items():
        write_jsonl(root / name / "mmlu.jsonl", rows)
        report(root / name, json.loads((root / name / "report.json").read_text()))
    for seed in range(3):
        for form in ("tagged", "bfcl", "bfcl-fewshot"):
            compare(
                root / f"eval-base-{form}",
                root / f"eval-tuned-s{seed}",
                root / f"compare-{form}-s{seed}",
            )
        for side, right in (("layers-base", 0), (f"layers-tuned-s{seed}", 7 + seed)):
            directory = root / side
            write_jsonl(directory / "items.jsonl", layer_items())
            write_jsonl(
                directory / "predictions" / "out.jsonl",
                [
                    prediction(i, i["gold"] if i["gold"] and int(i["id"][1:]) < right else [])
                    for i in layer_items()
                ],
            )
            report(directory, {"model": side})
        compare(
            root / "layers-base", root / f"layers-tuned-s{seed}", root / f"compare-layers-s{seed}"
        )
        write_json(
            root / f"train-s{seed}" / "model" / "fcsft.json",
            {
                "steps": 240,
                "examples": 605 + seed,
                "too_long": 9,
                "loss_first": 1.6612,
                "loss_last": 0.1357 + seed / 100,
                "wall_s": 3301.7 + seed,
            },
        )
    dev = root / "dev" / "step-240"
    dev.mkdir(parents=True)
    for name in ("items.jsonl", "predictions"):
        src = root / "eval-tuned-s1" / name
        (dev / name).symlink_to(src, target_is_directory=src.is_dir())
    meta = json.loads((root / "eval-tuned-s1" / "report.json").read_text())
    meta["split"]["part"] = "dev"
    report(dev, meta | {"command": "fcsft eval --split dev --out dev/step-240"})
    write_json(root / "dev" / "choice.json", load("examples/bfcl-smollm2/choose.py").choose(root))
    write_json(
        root / "generate-0" / "stats.json", {"in": 726, "out": 711, "rejected": 15, "wall_s": 12.4}
    )
    write_json(
        root / "generate-1" / "stats.json", {"in": 14, "out": 14, "rejected": 0, "wall_s": 1.1}
    )
    write_json(root / "general" / "stats.json", {"in": 110, "out": 108, "rejected": 2})
    write_json(
        root / "validate" / "stats.json",
        {"in": 725, "out": 710, "rejected": 15, "reasons": {"format.bad_type": 15}},
    )
    write_json(
        root / "curate" / "stats.json",
        {
            "in": 818,
            "out": 761,
            "rejected": 57,
            "reasons": {"curate.duplicate": 17, "curate.contaminated": 2},
            "report": {
                "decontamination": {
                    "ngram": 8,
                    "near": 0.7,
                    "removed": 2,
                    "file": "contamination.jsonl",
                }
            },
        },
    )
    write_jsonl(
        root / "curate" / "contamination.jsonl",
        [
            {
                "id": "live_irrelevance_12-3-1",
                "question": "Who painted the Sistine Chapel ceiling?",
                "set": "bfcl:irrelevance",
                "match_id": "irrelevance_0",
                "match_text": "Who painted the ceiling of the Sistine Chapel?",
                "how": "near",
                "score": 0.7313,
            },
            {
                "id": "general:general-44",
                "question": "Tell me a joke about otters",
                "set": "bfcl:irrelevance",
                "match_id": "irrelevance_1",
                "match_text": "Tell me a joke about otters.",
                "how": "exact",
                "score": 1.0,
            },
        ],
    )
    write_jsonl(root / "export" / "train.openai.jsonl", [{"messages": []}] * 7)
    write_jsonl(root / "export" / "test.openai.jsonl", [{"messages": []}] * 3)
    write_jsonl(
        root / "commands.jsonl",
        [
            {
                "argv": ["python", "examples/bfcl-smollm2/build.py", "--near-miss", "200"],
                "started": "2026-12-01T08:00:00Z",
                "wall_s": 2711.3,
                "exit": 0,
            },
            {
                "argv": ["fcsft", "train", "--seed", "0"],
                "started": "2026-12-01T08:45:11Z",
                "wall_s": 3302.9,
                "exit": 0,
            },
            {
                "argv": ["fcsft", "eval", "--mmlu", "1000", "--max-tokens", "160"],
                "started": "2026-12-01T09:40:14Z",
                "wall_s": 4100.0,
                "exit": 1,
            },
        ],
    )


def numbers(value) -> list[float]:
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [len(value)] + [n for v in value for n in numbers(v)]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return []
    return [value]


def renderings(value: float) -> set[str]:
    """The ways a page may write a number (signs are not part of a token)."""
    value = abs(value)
    out = {
        str(value),
        f"{value:.0f}",
        f"{value:.1f}",
        f"{value:.2f}",
        f"{value:.3f}",
        f"{value:.3g}",
    }
    out |= {f"{100 * value:.0f}", f"{100 * value:.1f}", f"{100 * value:.2f}"}
    return out


TOKEN = re.compile(r"\d+(?:\.\d+)?")


def test_every_number_on_the_page_and_in_results_json_comes_from_the_run(tmp_path, monkeypatch):
    monkeypatch.setattr(bfcl, "data_dir", lambda: FIXTURE)
    # The fixture has no live categories to draw few-shot examples from; the form is tested
    # in test_bfcl_prompt.py.
    monkeypatch.setattr(bfcl_prompt, "shots", lambda folder: ())
    results = load("examples/bfcl-smollm2/results.py")
    monkeypatch.setattr(results, "DOCS", tmp_path / "docs")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{results.PROOF_BEGIN}\nold 99%\n{results.PROOF_END}\nrest\n")
    monkeypatch.setattr(results, "README", readme)
    run = tmp_path / "run"
    make_run(run, tmp_path / "scripts")
    tried = tmp_path / "tried"  # a recipe's dev study as choose.py --keep leaves it
    tried.mkdir()
    (tried / "recipe.json").write_text((run / "dev" / "choice.json").read_text())
    monkeypatch.setattr(results, "TRIED", tried)

    page, figures = results.main(run)
    results.write(page, figures)
    assert (tmp_path / "docs" / "results.md").read_text() == page
    assert json.loads((tmp_path / "docs" / "results.json").read_text()) == figures
    # The README's paragraph is replaced, the text around it kept, and its figures are the run's.
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("\nrest\n") and "99%" not in text
    assert "simple_python AST accuracy 33.3% (bfcl) -> 55.6% (n = 3)" in text

    # results.json, worked out here from the run's files.
    tuned = [json.loads((run / f"eval-tuned-s{s}" / "report.json").read_text()) for s in range(3)]
    base = {
        f: json.loads((run / f"eval-base-{f}" / "report.json").read_text())
        for f in ("tagged", "bfcl", "bfcl-fewshot")
    }

    def mean(category, metric):
        return round(sum(r["layers"][category][metric]["rate"] for r in tuned) / 3, 4)

    cells = [
        json.loads((run / f"compare-tagged-s{s}" / "compare.json").read_text())["mmlu"]["cloze"]
        for s in range(3)
    ]
    sections = [r["official"] for r in (*base.values(), *tuned)]
    assert figures["split"] == "test" and figures["seeds"] == [0, 1, 2]
    assert figures["simple_python_n"] == 3
    assert (
        figures["simple_python_full_call"] == mean("simple_python", "full_call") == round(5 / 9, 4)
    )
    assert figures["parallel_full_call"] == mean("parallel", "full_call") == round(2 / 3, 4)
    assert figures["irrelevance_no_call"] == mean("irrelevance", "no_call") == round(5 / 6, 4)
    assert figures["simple_python_call_rate"] == mean("simple_python", "called")
    assert figures["multiple_full_call"] is None  # not in this run
    assert figures["mmlu_n"] == 60
    assert figures["mmlu_diff_low"] == round(min(c["ci95_low"] for c in cells), 4)
    assert figures["mmlu_diff_high"] == round(max(c["ci95_high"] for c in cells), 4)
    agreement = sum(s["agree"] for s in sections) / sum(s["n"] for s in sections)
    assert figures["official_agreement"] == round(agreement, 5)
    assert figures["base_forms"]["simple_python"] == "bfcl"  # the base's best form there
    assert (
        figures["base"]["simple_python_full_call"]
        == base["bfcl"]["layers"]["simple_python"]["full_call"]["rate"]
    )

    # The page states each target with the figure that decides it, and lists what it must.
    assert re.search(
        r"- simple_python AST accuracy >= 40%: tuned 55\.6% \(33\.3% to 66\.7%\), base 33\.3% \(bfcl\): met",
        page,
    )
    assert "- parallel AST accuracy >= 10%: tuned 66.7% (0.0% to 100.0%)" in page
    assert "MMLU (cloze, 60 questions)" in page
    assert "## BFCL (test part)" in page
    for row in read_jsonl(run / "curate" / "contamination.jsonl"):
        assert f"| {row['id']} |" in page and row["match_id"] in page
    assert "| step-240 | dev |" in page
    assert "Step chosen: **240**" in page
    assert "| recipe | `" in page and "| **240** |" in page
    for command in read_jsonl(run / "commands.jsonl"):
        assert " ".join(command["argv"]) in page
    assert "exit 1" in page
    assert "agrees with fcsft's verdict on 34 of 36" in page
    assert page.count("| base bfcl-fewshot | irrelevance_") == 2
    assert "BFCL counts a reply it cannot decode as calling nothing" in page
    assert "![base vs tuned, seed 0](results-bfcl.png)" in page
    assert (tmp_path / "docs" / "results-bfcl.png").read_bytes()[:4] == b"\x89PNG"

    # Nothing else: every number on the page is one the run's files hold (or a figure worked
    # out from them above), or one of the targets.
    known = set()
    for path in run.rglob("*"):
        if path.suffix in (".json", ".jsonl"):
            text = path.read_text()
            known |= set(TOKEN.findall(text))
            docs = (
                [json.loads(text)]
                if path.suffix == ".json"
                else [json.loads(line) for line in text.splitlines()]
            )
            known |= {r for doc in docs for n in numbers(doc) for r in renderings(n)}
            if path.suffix == ".jsonl":
                known.add(str(len(docs)))
    generate = [json.loads((run / f"generate-{k}" / "stats.json").read_text()) for k in range(2)]
    derived = [sum(g[k] for g in generate) for k in ("in", "out", "rejected", "wall_s")]
    commands = list(read_jsonl(run / "commands.jsonl"))
    derived += [sum(c["wall_s"] for c in commands) / 3600, agreement]
    derived += [
        sum(r["layers"][c][m]["rate"] for r in tuned) / 3
        for c, m in (
            ("simple_python", "full_call"),
            ("simple_python", "called"),
            ("parallel", "full_call"),
            ("irrelevance", "no_call"),
        )
    ]
    derived += [sum(s["agree"] for s in sections), sum(s["n"] for s in sections)]
    known |= {r for n in derived for r in renderings(n)}
    known |= {
        r for n in [*results.TARGETS.values(), results.TARGET_AGREEMENT] for r in renderings(n)
    }

    def stray(text):
        return set(TOKEN.findall(text)) - known

    assert not stray(page), stray(page)
    assert stray(page + "\n| simple_python | typed by hand | 37.9% |") == {"37.9"}


def test_the_readme_proof_paragraph_is_the_one_results_py_writes():
    """The committed README's proof paragraph is exactly what results.py writes from the
    committed docs/results.json (or, with none, the sentence saying there is none): a figure
    typed into it by hand fails here."""
    results = load("examples/bfcl-smollm2/results.py")
    figures = (
        json.loads(results.DOCS.joinpath("results.json").read_text())
        if (results.DOCS / "results.json").exists()
        else None
    )
    readme = results.README.read_text()
    assert results.readme_with_proof(readme, results.proof_paragraph(figures)) == readme


def dev_report(simple, multiple, parallel, irrelevance, called, part="dev"):
    rates = {
        "simple_python": {"full_call": simple, "called": called},
        "multiple": {"full_call": multiple},
        "parallel": {"full_call": parallel},
        "irrelevance": {"no_call": irrelevance},
    }
    layers = {c: {m: {"rate": r} for m, r in ms.items()} for c, ms in rates.items()}
    return {"split": {"part": part}, "layers": layers}


def test_the_step_is_the_best_dev_mean_among_those_meeting_both_guards(tmp_path):
    choose = load("examples/bfcl-smollm2/choose.py")
    reports = {
        40: dev_report(0.30, 0.20, 0.10, 0.95, 0.90),  # mean 0.3875, guards met
        80: dev_report(0.50, 0.40, 0.20, 0.70, 0.99),  # best mean 0.45, irrelevance under 80%
        120: dev_report(0.35, 0.25, 0.10, 0.85, 0.86),  # mean 0.3875, guards met: a tie with 40
        160: dev_report(0.45, 0.30, 0.10, 0.90, 0.80),  # mean 0.4375, call rate under 85%
    }
    for step, body in reports.items():
        write_json(tmp_path / "dev" / f"step-{step}" / "report.json", body)
    choice = choose.choose(tmp_path)
    assert choice["step"] == 40 and choice["met_guards"]
    assert choice["steps"]["80"]["mean"] == pytest.approx(0.45)
    assert not choice["steps"]["80"]["meets_guards"]

    write_json(tmp_path / "dev" / "step-40" / "report.json", dev_report(0.3, 0.2, 0.1, 0.7, 0.9))
    write_json(tmp_path / "dev" / "step-120" / "report.json", dev_report(0.3, 0.2, 0.1, 0.7, 0.9))
    choice = choose.choose(tmp_path)  # none meets both: the best mean of all
    assert choice["step"] == 80 and not choice["met_guards"]

    write_json(tmp_path / "dev" / "step-200" / "report.json", dev_report(1, 1, 1, 1, 1, "test"))
    with pytest.raises(SystemExit, match="dev part only"):
        choose.choose(tmp_path)


def test_a_kept_dev_study_names_its_recipe_and_shows_each_steps_scores(tmp_path):
    """choose.py --keep writes the choice with the build command as it ran and seed 0's
    training settings; results.py lists it under the recipes tried, the chosen step in bold."""
    choose, results = (
        load("examples/bfcl-smollm2/choose.py"),
        load("examples/bfcl-smollm2/results.py"),
    )
    write_json(tmp_path / "dev" / "step-40" / "report.json", dev_report(0.3, 0.2, 0.1, 0.9, 0.9))
    write_json(tmp_path / "dev" / "step-80" / "report.json", dev_report(0.5, 0.1, 0.0, 0.6, 0.7))
    argv = ["python", "build.py", "--run-dir", "runs/x", "--near-miss", "7", "--decline", "No."]
    (tmp_path / "commands.jsonl").write_text(json.dumps({"argv": argv, "exit": 0}) + "\n")
    config = {
        "method": "lora",
        "lora_r": 8,
        "learning_rate": 1e-4,
        "batch_size": 1,
        "grad_accum": 2,
        "max_length": 2048,
        "steps": 80,
    }
    write_json(
        tmp_path / "train-s0" / "model" / "fcsft.json",
        {"config": config, "examples": 33, "too_long": 2},
    )
    kept = tmp_path / "tried" / "x.json"
    with mock.patch.object(sys, "argv", ["choose.py", str(tmp_path), "--keep", str(kept)]):
        choose.main()
    assert json.loads(kept.read_text()) == json.loads(
        (tmp_path / "dev" / "choice.json").read_text()
    )
    page = "\n".join(results.tried_section(kept.parent))
    assert "`--near-miss 7 --decline No.`" in page and "runs/x" not in page
    assert "lora r8, lr 0.0001, 1x2x2048 tokens a step, 33 conversations (2 too long)" in page
    assert "| **40** | 30.0% | 20.0% | 10.0% | 90.0% | 90.0% | yes |" in page
    assert "| 80 | 50.0% | 10.0% | 0.0% | 60.0% | 70.0% | no |" in page


def test_the_kept_part_of_a_run_writes_the_same_page_and_holds_the_tested_adapters(
    tmp_path, monkeypatch
):
    """keep.py copies what results.py reads, the predictions and the adapters of the models the
    test part was asked of, and nothing the page does not need (caches, checkpoints, weights)."""
    monkeypatch.setattr(bfcl, "data_dir", lambda: FIXTURE)
    monkeypatch.setattr(bfcl_prompt, "shots", lambda folder: ())
    results, keep = load("examples/bfcl-smollm2/results.py"), load("examples/bfcl-smollm2/keep.py")
    monkeypatch.setattr(results, "DOCS", tmp_path / "docs")
    run = tmp_path / "run"
    make_run(run, tmp_path / "scripts")
    tested = run / "train-s0" / "model-step-240"
    (tested / "adapter").mkdir(parents=True)
    (tested / "adapter" / "adapter_model.safetensors").write_bytes(b"lora")
    (tested / "model.safetensors").write_bytes(b"merged weights")
    (run / "cache.sqlite").write_bytes(b"replies")
    (run / "train-s0" / "checkpoints" / "checkpoint-10").mkdir(parents=True)
    (run / "train-s0" / "checkpoints" / "checkpoint-10" / "state.pt").write_bytes(b"state")
    path = run / "eval-tuned-s0" / "report.json"
    write_json(path, json.loads(path.read_text()) | {"model": f"local:{tested}"})

    kept = tmp_path / "kept"
    assert keep.main([str(run), "--to", str(kept)]) == 0
    assert results.main(kept) == results.main(run)
    assert (
        kept / "train-s0" / "model-step-240" / "adapter" / "adapter_model.safetensors"
    ).is_file()
    for name in ("eval-tuned-s1/predictions/out.jsonl", "eval-tuned-s1/items.jsonl"):
        assert (kept / name).read_text() == (run / name).read_text()
    names = {p.name for p in kept.rglob("*")}
    assert not names & {"cache.sqlite", "model.safetensors", "checkpoints", "state.pt"}

    # A tested model whose adapter is gone is named, and the kept folder stays as it was.
    shutil.rmtree(tested / "adapter")
    with pytest.raises(SystemExit, match="model-step-240/adapter: missing"):
        keep.main([str(run), "--to", str(kept)])
    assert (kept / "train-s0" / "model-step-240" / "adapter").is_dir()
    assert keep.main([str(tmp_path / "nowhere")]) == 2


def test_a_fully_fine_tuned_tested_model_is_named_and_its_weights_are_not_kept(
    tmp_path, monkeypatch, capsys
):
    """A model trained with method full has no adapter; keep.py keeps its fcsft.json, leaves
    its weights behind and says so, where a LoRA model without its adapter is an error."""
    monkeypatch.setattr(bfcl, "data_dir", lambda: FIXTURE)
    monkeypatch.setattr(bfcl_prompt, "shots", lambda folder: ())
    keep = load("examples/bfcl-smollm2/keep.py")
    run = tmp_path / "run"
    make_run(run, tmp_path / "scripts")
    tested = run / "train-s0" / "model-step-240"
    tested.mkdir(parents=True)
    (tested / "model.safetensors").write_bytes(b"all the weights")
    write_json(tested / "fcsft.json", {"config": {"method": "full"}})
    path = run / "eval-tuned-s0" / "report.json"
    write_json(path, json.loads(path.read_text()) | {"model": f"local:{tested}"})

    kept = tmp_path / "kept"
    assert keep.main([str(run), "--to", str(kept)]) == 0
    assert "not kept: the weights of train-s0/model-step-240" in capsys.readouterr().out
    assert (kept / "train-s0" / "model-step-240" / "fcsft.json").is_file()
    assert not (kept / "train-s0" / "model-step-240" / "model.safetensors").exists()

    write_json(tested / "fcsft.json", {"config": {"method": "lora"}})
    with pytest.raises(SystemExit, match="model-step-240/adapter: missing"):
        keep.main([str(run), "--to", str(kept)])


def test_a_call_bias_tried_on_dev_is_chosen_with_its_step_by_the_same_rule(tmp_path, capsys):
    """Each (step, bias) pair is one candidate; the guards and the mean decide among pairs, a
    tie goes to the earlier step, then to the bias nearer 0; run.sh reads "STEP BIAS"."""
    choose = load("examples/bfcl-smollm2/choose.py")
    results = load("examples/bfcl-smollm2/results.py")
    reports = {
        "step-80": dev_report(0.50, 0.40, 0.20, 0.62, 0.97),  # best mean, guards missed
        "step-80-bias-0.5": dev_report(0.46, 0.30, 0.10, 0.81, 0.86),  # guards met, mean 0.4175
        "step-80-bias-1": dev_report(0.40, 0.25, 0.05, 0.96, 0.70),  # call rate too low
        "step-120": dev_report(0.48, 0.30, 0.10, 0.79, 0.90),  # irrelevance just short
        "step-120-bias-0.5": dev_report(0.45, 0.30, 0.07, 0.85, 0.85),  # guards met, mean 0.4175
    }
    for name, body in reports.items():
        write_json(tmp_path / "dev" / name / "report.json", body)
    choice = choose.choose(tmp_path)
    assert (choice["step"], choice["call_bias"], choice["met_guards"]) == (80, -0.5, True)
    assert list(choice["steps"]) == ["80", "80 bias -0.5", "80 bias -1", "120", "120 bias -0.5"]
    assert choice["chosen"] == "80 bias -0.5"
    with mock.patch.object(sys, "argv", ["choose.py", str(tmp_path)]):
        choose.main()
    assert capsys.readouterr().out.strip() == "80 -0.5"
    write_json(tmp_path / "tried" / "r.json", choice)
    page = "\n".join(results.tried_section(tmp_path / "tried"))
    assert "| **80 bias -0.5** |" in page and "| 80 |" in page
    # a fully fine-tuned recipe has no LoRA rank to show
    choice["recipe"] = {"train": {"method": "full", "lora_r": 16, "learning_rate": 5e-05}}
    write_json(tmp_path / "tried" / "r.json", choice)
    page = "\n".join(results.tried_section(tmp_path / "tried"))
    assert "full, lr 5e-05," in page and "r16" not in page


def test_a_restored_run_skips_what_the_kept_folder_finished(tmp_path, monkeypatch):
    """keep.py carries the markers of finished stages; `--restore` puts the files a new run
    directory lacks back, and the same evaluation there asks the model nothing: a script with
    other replies leaves the restored predictions and the report as they were."""
    monkeypatch.setattr(bfcl, "data_dir", lambda: FIXTURE)
    monkeypatch.setattr(bfcl_prompt, "shots", lambda folder: ())
    keep = load("examples/bfcl-smollm2/keep.py")
    run, scripts = tmp_path / "run", tmp_path / "scripts"
    make_run(run, scripts)
    kept = tmp_path / "kept"
    assert keep.main([str(run), "--to", str(kept)]) == 0
    assert (kept / "eval-tuned-s0" / "predictions" / "_done.json").is_file()

    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "eval-tuned-s0").mkdir(parents=True)
    (elsewhere / "eval-tuned-s0" / "report.json").write_text("{}")  # present: left as it is
    assert keep.main([str(elsewhere), "--restore", "--to", str(kept)]) == 0
    assert (elsewhere / "eval-tuned-s0" / "report.json").read_text() == "{}"
    (scripts / "eval-tuned-s0.yaml").write_text(yaml.safe_dump([QUIET] * 6))  # other replies
    plan = EvalPlan(
        model=f"mock:{scripts / 'eval-tuned-s0.yaml'}",
        out_dir=elsewhere / "eval-tuned-s0",
        bfcl=["simple_python", "parallel", "irrelevance"],
        split="test",
        command="fcsft eval --split test --out eval-tuned-s0",
    )
    evaluate(plan, run_stage)
    name = "eval-tuned-s0/predictions/out.jsonl"
    assert (elsewhere / name).read_text() == (run / name).read_text()
    before = json.loads((run / "eval-tuned-s0" / "report.json").read_text())
    after = json.loads((elsewhere / "eval-tuned-s0" / "report.json").read_text())
    assert after["layers"] == before["layers"]
    assert keep.main([str(elsewhere), "--restore", "--to", str(tmp_path / "none")]) == 2


def test_a_restored_training_is_skipped_and_its_adapter_serves_as_the_model(tmp_path, monkeypatch):
    """The training stage's marker and the adapter are kept (not the checkpoints, not the merged
    weights); restored elsewhere, `fcsft train` with the same data and settings trains nothing
    and `local:.../model/adapter` loads the trained weights."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from fcsft.models.weights import model_folder
    from fcsft.train.step import train_stage
    from test_chat_tokens import EXAMPLE, char_tokenizer
    from test_train_loop import settings
    from tiny_llama import tiny_llama

    monkeypatch.setenv("FCSFT_CACHE", str(tmp_path / "cache"))
    keep = load("examples/bfcl-smollm2/keep.py")
    base = tmp_path / "base"
    tokenizer = char_tokenizer()
    tiny_llama(vocab=len(tokenizer), hidden_size=32, intermediate_size=64,
               max_position_embeddings=8192).save_pretrained(base)  # fmt: skip
    tokenizer.save_pretrained(base)
    config = settings(base, steps=2)
    run = tmp_path / "run"
    first = run_stage(train_stage(config, run / "train-s0"), run, [EXAMPLE])
    write_jsonl(run / "commands.jsonl", [])
    kept = tmp_path / "kept"
    assert keep.main([str(run), "--to", str(kept)]) == 0
    assert not list(kept.rglob("checkpoint-*")) and not list(kept.rglob("model.safetensors"))

    elsewhere = tmp_path / "elsewhere"
    assert keep.main([str(elsewhere), "--restore", "--to", str(kept)]) == 0
    again = run_stage(train_stage(config, elsewhere / "train-s0"), elsewhere, [EXAMPLE])
    assert again == first and not (elsewhere / "train-s0" / "checkpoints").exists()
    trained = transformers.AutoModelForCausalLM.from_pretrained(run / "train-s0" / "model")
    served = transformers.AutoModelForCausalLM.from_pretrained(
        model_folder(str(elsewhere / "train-s0" / "model" / "adapter"))
    )
    a, b = trained.state_dict(), served.state_dict()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
