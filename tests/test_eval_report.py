"""Reports and comparisons from eval directories, and the `fcsft eval` commands end to end."""

import json

import pytest
import yaml

from clirun import fcsft
from fcsft.evaluate.report import compare, mmlu_summary, report
from fcsft.jsonl import read_jsonl, write_jsonl
from test_eval_predict import ADD


def items(n_call=10, n_none=4):
    calls = [
        {
            "id": f"c{k}",
            "layer": "standard",
            "kind": "held_out_family",
            "question": f"Add {k} and 1.",
            "tools": [ADD],
            "gold": [[{"name": "add", "arguments": {"a": k, "b": 1}}]],
        }
        for k in range(n_call)
    ]
    none = [
        {
            "id": f"n{k}",
            "layer": "adversarial",
            "kind": "chit_chat",
            "question": f"Hello number {k}",
            "tools": [ADD],
            "gold": [],
        }
        for k in range(n_none)
    ]
    return calls + none


def prediction(item, turns=None, parse_error=None, model_error=None):
    return {
        "id": item["id"],
        "layer": item["layer"],
        "turns": turns if turns is not None else [],
        "parse_error": parse_error,
        "model_error": model_error,
        "raw": [],
    }


def eval_dir(path, predictions, mmlu=None):
    write_jsonl(path / "items.jsonl", items())
    write_jsonl(path / "predictions" / "out.jsonl", predictions)
    if mmlu is not None:
        write_jsonl(path / "mmlu.jsonl", mmlu)
    return path


def base_predictions():
    """Calls nothing anywhere: 0/10 on calls, 4/4 on should-not-call."""
    return [prediction(i) for i in items()]


def tuned_predictions():
    """8 of 10 calls right (one wrong value, one parse failure); 3 of 4 abstentions, one
    call where none was wanted; and one item the server failed on."""
    out = []
    for item in items():
        if item["id"] == "c8":
            out.append(prediction(item, [[{"name": "add", "arguments": {"a": 99, "b": 1}}]]))
        elif item["id"] == "c9":
            out.append(prediction(item, parse_error="unclosed <tool_call>"))
        elif item["id"] == "n3":
            out.append(prediction(item, [[{"name": "add", "arguments": {"a": 1, "b": 1}}]]))
        elif item["id"] == "n2":
            out.append(prediction(item, model_error="HTTP 500 after 4 tries"))
        elif item["gold"]:
            out.append(prediction(item, item["gold"]))
        else:
            out.append(prediction(item))
    return out


def test_a_report_scores_every_item_and_leaves_model_failures_out(tmp_path):
    directory = eval_dir(tmp_path, tuned_predictions())
    result = report(directory, {"model": "mock"})
    assert result["items"] == 14 and result["scored"] == 13 and result["model_errors"] == 1
    standard, adversarial = result["layers"]["standard"], result["layers"]["adversarial"]
    assert (standard["full_call"]["k"], standard["full_call"]["n"]) == (8, 10)
    assert (standard["tool_selection"]["k"], standard["tool_selection"]["n"]) == (9, 10)
    assert (standard["parse_failure"]["k"], standard["parse_failure"]["n"]) == (1, 10)
    assert (adversarial["no_call"]["k"], adversarial["no_call"]["n"]) == (2, 3)
    low, high = standard["full_call"]["ci95"]
    assert low < 0.8 < high
    rows = list(read_jsonl(directory / "scores.jsonl"))
    assert len(rows) == 13 and {r["id"] for r in rows} == {i["id"] for i in items()} - {"n2"}
    page = (directory / "report.html").read_text()
    assert "data:image/png;base64," in page and "full_call" in page


def test_compare_pairs_items_and_tests_the_difference(tmp_path):
    base = eval_dir(tmp_path / "base", base_predictions())
    tuned = eval_dir(tmp_path / "tuned", tuned_predictions())
    result = compare(base, tuned, tmp_path / "cmp")
    full = result["layers"]["standard"]["full_call"]
    assert full["n"] == 10
    assert (full["base"]["k"], full["tuned"]["k"]) == (0, 8)
    assert (full["gained"], full["lost"]) == (8, 0)
    assert full["p_value"] == pytest.approx(2 / 2**8)  # exact McNemar: 8 discordant, all one way
    assert full["difference"] == pytest.approx(0.8)
    # Newcombe: 0.8 - sqrt((0.8 - 0.4902)^2 + 0.2775^2), Wilson's 8/10 low and 0/10 high.
    assert full["ci95_low"] == pytest.approx(0.3841, abs=1e-3)
    no_call = result["layers"]["adversarial"]["no_call"]
    assert no_call["n"] == 3  # n2 failed in the tuned run, so it is not a pair
    assert (no_call["gained"], no_call["lost"]) == (0, 1)
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["layers"]["standard"]["full_call"]["gained"] == 8
    assert "compare.png" not in (tmp_path / "cmp" / "compare.html").read_text()  # inlined
    assert (tmp_path / "cmp" / "compare.png").exists()


def test_mmlu_counts_the_first_form_above_chance(tmp_path):
    marks = [
        {"id": f"q{k}", "letter": int(k % 4 == 0), "cloze": int(k % 2 == 0)} for k in range(200)
    ]
    summary = mmlu_summary(marks)
    assert summary["letter"]["above_chance"] is False  # 25% is chance
    assert summary["cloze"]["above_chance"] is True
    assert summary["counts"] == "cloze"
    worse = [m | {"cloze": int(k % 5 == 0)} for k, m in enumerate(marks)]
    base = eval_dir(tmp_path / "base", base_predictions(), marks)
    tuned = eval_dir(tmp_path / "tuned", base_predictions(), worse)
    mmlu = compare(base, tuned, tmp_path / "cmp")["mmlu"]
    assert mmlu["counts"] == "cloze"
    assert mmlu["cloze"]["base"]["k"] == 100 and mmlu["cloze"]["tuned"]["k"] == 40
    assert mmlu["cloze"]["p_value"] < 0.001
    # Forgetting is judged by the interval: -30 points is far outside +-3.
    assert mmlu["margin"] == 0.03 and mmlu["cloze"]["within_margin"] is False
    same = eval_dir(tmp_path / "same", base_predictions(), marks)
    unchanged = compare(base, same, tmp_path / "cmp2")["mmlu"]["cloze"]
    # No answer changed: phi = (100 * 100 - 200 / 2) / 100^2 = 0.99 and Wilson's half-width at
    # 100/200 is 0.0686, so the interval is +-0.0686 * sqrt(2 - 2 * 0.99) = +-0.0097.
    assert unchanged["difference"] == 0 and unchanged["within_margin"] is True
    assert unchanged["ci95_high"] == pytest.approx(0.0097, abs=2e-4)


def test_eval_commands_run_a_mock_model_score_and_compare(tmp_path):
    write_jsonl(tmp_path / "items.jsonl", items())
    script = [
        {"match": f"Add {k} ", "tool_calls": [{"name": "add", "arguments": {"a": k, "b": 1}}]}
        for k in range(10)
    ] + ["Hi there!"] * 4
    (tmp_path / "mock.yaml").write_text(yaml.safe_dump(script))
    done = fcsft(
        "eval",
        "--model",
        f"mock:{tmp_path / 'mock.yaml'}",
        "--items",
        str(tmp_path / "items.jsonl"),
        "--out",
        str(tmp_path / "tuned"),
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "tuned" / "report.json").read_text())
    assert saved["layers"]["all"]["full_call"]["k"] == 10
    assert saved["layers"]["adversarial"]["no_call"]["k"] == 4
    assert saved["command"].startswith("fcsft eval --model mock:")

    write_jsonl(tmp_path / "base.jsonl", base_predictions())
    done = fcsft(
        "eval",
        "score",
        "--predictions",
        str(tmp_path / "base.jsonl"),
        "--items",
        str(tmp_path / "items.jsonl"),
        "--out",
        str(tmp_path / "base"),
    )
    assert done.returncode == 0, done.stderr
    done = fcsft(
        "eval",
        "compare",
        str(tmp_path / "base"),
        str(tmp_path / "tuned"),
        "--out",
        str(tmp_path / "cmp"),
    )
    assert done.returncode == 0, done.stderr
    assert "standard" in done.stdout and "+100.0%" in done.stdout
    assert (tmp_path / "cmp" / "compare.html").exists()


def test_compare_pairs_the_items_both_were_asked_and_refuses_runs_with_none(tmp_path):
    base = eval_dir(tmp_path / "base", base_predictions())
    fewer = tmp_path / "fewer"  # the first two items left out, and the model failed on n2
    write_jsonl(fewer / "items.jsonl", items()[2:])
    write_jsonl(fewer / "predictions" / "out.jsonl", tuned_predictions()[2:])
    done = fcsft("eval", "compare", base, fewer, "--out", tmp_path / "c1")
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == (
        f"warning: compared on the 11 items both answered; 3 only in {base}, 0 only in {fewer}"
    )
    saved = json.loads((tmp_path / "c1" / "compare.json").read_text())
    assert saved["paired"] == {"items": 11, "only_base": 3, "only_tuned": 0}  # n2 failed
    assert saved["layers"]["standard"]["full_call"]["n"] == 8
    other = tmp_path / "other"  # another item set: no id in common
    renamed = [item | {"id": "x" + item["id"]} for item in items()]
    write_jsonl(other / "items.jsonl", renamed)
    write_jsonl(other / "predictions" / "out.jsonl", [prediction(item) for item in renamed])
    done = fcsft("eval", "compare", base, other, "--out", tmp_path / "c2")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {base} and {other} answered no item in common")
    assert not (tmp_path / "c2").exists()


def test_eval_errors_name_the_fix(tmp_path):
    done = fcsft(
        "eval",
        "--model",
        "mock:x.yaml",
        "--items",
        str(tmp_path / "no.jsonl"),
        "--out",
        str(tmp_path / "o"),
    )
    assert done.returncode == 2 and "fcsft testset" in done.stderr
    done = fcsft("eval", "compare", str(tmp_path), str(tmp_path), "--out", str(tmp_path / "c"))
    assert done.returncode == 2 and "not an eval directory" in done.stderr
