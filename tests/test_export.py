"""The `chat` export (rendered text with assistant spans) and the finance example's card."""

import itertools
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from clirun import fcsft
from fcsft.errors import UserError
from fcsft.export import SPLITS, ExportConfig, export_dataset
from fcsft.formats.chat import text_messages
from fcsft.formats.chat_tokens import render_example
from fcsft.jsonl import read_jsonl, write_jsonl
from test_chat_tokens import EXAMPLE, char_tokenizer

FINANCE = Path(__file__).parents[1] / "examples" / "finance"


def tokenizer_folder(root: Path) -> Path:
    """The test's character tokenizer saved as a transformers folder, as a user would name one."""
    folder = root / "tokenizer"
    char_tokenizer().save_pretrained(folder)
    return folder


def covered(spans: list[list[int]], start: int, end: int) -> bool:
    return any(s <= start and end <= e for s, e in spans)


def touched(spans: list[list[int]], start: int, end: int) -> bool:
    return any(start < e and s < end for s, e in spans)


def test_chat_spans_are_exactly_the_assistant_turns_and_give_the_training_mask(tmp_path):
    import datasets

    records = [json.loads(line) for line in EXAMPLE.read_text().splitlines()]
    for k, record in enumerate(records):
        record["meta"]["split"] = "test" if k == 2 else "train"
    curated = tmp_path / "curated.jsonl"
    write_jsonl(curated, records)
    folder = tokenizer_folder(tmp_path)
    config = ExportConfig(formats=["chat"], tokenizer=f"local:{folder}")
    result = export_dataset(curated, tmp_path / "out", config)
    assert result["files"] == ["train.chat.jsonl", "test.chat.jsonl"]
    loaded = datasets.load_dataset(
        "json", data_files={s: str(tmp_path / "out" / f"{s}.chat.jsonl") for s in SPLITS}
    )
    assert {s: len(loaded[s]) for s in SPLITS} == {"train": 2, "test": 1}
    rows = {row["id"]: row for split in SPLITS for row in loaded[split]}
    tokenizer = char_tokenizer()
    kinds = Counter()
    for record in records:
        row = rows[record["meta"]["id"]]
        text, spans = row["text"], row["assistant_spans"]
        messages = text_messages(record["messages"], record["tools"])
        # Each message's text, found in order: assistant turns inside a span, the rest outside.
        position = 0
        for message in messages:
            start = text.index(message["content"], position)
            position = start + len(message["content"])
            if message["role"] == "assistant":
                assert covered(spans, start, position)
            else:
                assert not touched(spans, start, position), message["role"]
        # A span is one assistant turn and its end-of-turn token, nothing more.
        turns = [m["content"] for m in messages if m["role"] == "assistant"]
        assert [text[s:e] for s, e in spans] == [f"{t}<|im_end|>\n" for t in turns]
        learned = "".join(text[s:e] for s, e in spans)
        for message in record["messages"]:
            if message["role"] == "assistant":
                if message.get("reasoning_content"):
                    kinds["think"] += 1
                    assert f"<think>{message['reasoning_content']}</think>" in learned
                for call in message.get("tool_calls") or []:
                    kinds["call"] += 1
                    arguments = json.loads(call["function"]["arguments"])
                    assert (
                        json.dumps(
                            {"name": call["function"]["name"], "arguments": arguments},
                            ensure_ascii=False,
                        )
                        in learned
                    )
                if not message.get("tool_calls"):
                    kinds["answer"] += 1
                    assert f"<final_answer>{message['content']}</final_answer>" in learned
            elif message["role"] in {"system", "tool"}:
                assert message["content"] not in learned
        # The stored ids and mask are the training path's, and the spans alone rebuild them.
        example = render_example(tokenizer, record)
        assert row["input_ids"] == example.input_ids
        assert row["assistant_masks"] == example.assistant_masks
        ids, mask = [], []
        cuts = sorted({0, len(text), *(edge for span in spans for edge in span)})
        for start, end in itertools.pairwise(cuts):
            piece = tokenizer(text[start:end], add_special_tokens=False)["input_ids"]
            ids += piece
            mask += [int(covered(spans, start, end))] * len(piece)
        assert (ids, mask) == (example.input_ids, example.assistant_masks)
    assert kinds == {"think": 3, "call": 5, "answer": 3}  # fin-003 calls two at once


def test_chat_tokenizer_must_be_a_local_folder_with_a_tokenizer(tmp_path):
    curated = tmp_path / "curated.jsonl"
    write_jsonl(curated, [])
    for spec, message in [
        ("smollm2", "expected local:smollm2 or local:PATH"),
        (f"local:{tmp_path}", "holds no tokenizer"),
    ]:
        config = ExportConfig(formats=["chat"], tokenizer=spec)
        with pytest.raises(UserError, match=message):
            export_dataset(curated, tmp_path / "out", config)


def finance_project(root: Path) -> Path:
    """The finance example's project with a scripted teacher: grounded answers except for
    Kestrel Mining's revenue, rewrites and combinations the checks refuse, an evaluation set
    that overlaps a seed, and the chat export through a tokenizer folder."""
    replies = [{"match": "Rewrite the question", "content": '["Tell me about it."]'}] * 40
    replies += [{"match": "Write one question", "content": "What about them?"}] * 20
    replies += [{"match": "Question: What was Kestrel", "content": "It made 987654.3 million."}] * 9
    replies += [{"match": "Tool results", "content": "The results above answer it."}] * 200
    # Variations without a plan go to the agent loop, which gets no tool call from this teacher.
    replies += [{"match": "By how many", "content": "<final_answer>No idea.</final_answer>"}] * 9
    (root / "teacher.yaml").write_text(yaml.safe_dump(replies))
    (root / "heldout.jsonl").write_text(
        json.dumps({"question": "What was Juniper Rail's revenue in fiscal 2025, in dollars?"})
        + "\n"
    )
    config = yaml.safe_load((FINANCE / "project.yaml").read_text())
    config["run_dir"] = "run"
    config["models"]["teacher"] = {"uri": "mock:teacher.yaml"}
    config["seeds"]["files"] = [str(FINANCE / "seeds.jsonl")]
    config["tools"] = [
        {"builtin": "search", "folder": str(FINANCE / "docs")},
        {"builtin": "fetch", "root": str(FINANCE / "docs")},
        "python",
    ]
    config["curate"]["general"] = [str(FINANCE / "general.jsonl")]
    config["curate"]["decontaminate"] = ["heldout.jsonl"]
    config["export"] = {
        "formats": ["openai", "sharegpt", "parquet", "chat"],
        "tokenizer": f"local:{tokenizer_folder(root)}",
    }
    path = root / "project.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def tables(section: str) -> list[list[str]]:
    return [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def numbers_in(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(numbers_in(v) for v in value.values()), set())
    if isinstance(value, list):
        return set().union(*(numbers_in(v) for v in value), set())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return set()
    return {str(value)}


def test_finance_card_renders_its_plots_and_every_number_is_a_stage_stat(tmp_path):
    from fcsft.config import load_config
    from fcsft.pipeline import Run, run_pipeline

    path = finance_project(tmp_path)
    project = load_config(path)
    run_pipeline(Run(project, tmp_path), until="validate")
    for command in ("curate", "export"):  # the two stage commands, as a user runs them
        result = fcsft(command, path, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    assert "card:" in result.stdout
    run, out = tmp_path / "run", tmp_path / "run" / "export"
    card = (out / "DATASET.md").read_text()
    stages = {
        p.parent.name: json.loads(p.read_text())
        for p in run.glob("*/stats.json")
        if p.parent.name != "export"
    }
    validate, curate = stages["validate"], stages["curate"]
    report = curate["report"]
    # The fixture exercises every part of the card.
    assert validate["rejected"] > 0 and report["general"]["used"] > 0
    assert report["split"]["test"] > 0 and report["decontamination"]["hits"]["heldout"] == 1
    assert curate["reasons"].get("curate.balanced_out", 0) > 0

    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r"!\[", card)) == 3

    body, config_block = card.split("## Config", 1)
    sections = dict(re.findall(r"## ([^\n]+)\n(.*?)(?=\n## |\Z)", body, re.DOTALL))
    size = tables(sections["Size"])
    assert size[:3] == [
        ["split", "records", "tool families"],
        ["train", str(report["split"]["train"]), str(report["families"]["train"])],
        ["test", str(report["split"]["test"]), str(report["families"]["test"])],
    ]
    assert size[3] == ["stage", "in", "out", "rejected"]
    order = ["seeds", "expand", "combine", "tasks", "generate", "validate", "curate"]
    assert size[4:] == [
        [s, str(stages[s]["in"]), str(stages[s]["out"]), str(stages[s]["rejected"])] for s in order
    ]
    assert f"includes {report['general']['used']} general conversations" in sections["Size"]

    tools = tables(sections["Tool distribution"])[1:]
    assert {row[0]: row[1:] for row in tools} == {
        tool: [
            str(report["tools_before"].get(tool, 0)),
            str(report["tools_after"].get(tool, 0)),
            str(share),
        ]
        for tool, share in report["tools_target"].items()
    }
    assert f"({curate['reasons']['curate.balanced_out']} trajectories dropped)" in card
    under = ", ".join(report["under_represented"]) or "none"
    assert f"need more seeds): {under}." in card

    kept = list(read_jsonl(run / "curate/out.jsonl"))
    expected_steps = {split: Counter() for split in SPLITS}
    for record in kept:
        if record["meta"].get("how") != "general":
            turns = sum(m["role"] == "assistant" for m in record["messages"])
            expected_steps[record["meta"]["split"]][turns] += 1
    steps = tables(sections["Steps per trajectory"])[1:]
    assert steps == [
        [str(n), str(expected_steps["train"][n]), str(expected_steps["test"][n])]
        for n in sorted(expected_steps["train"] | expected_steps["test"])
    ]
    assert sum(int(row[1]) for row in steps) == report["split"]["train"] - report["general"]["used"]
    assert sum(int(row[2]) for row in steps) == report["split"]["test"]

    assert (
        f"Validation checked {validate['in']} trajectories: {validate['out']} kept, "
        f"{validate['rejected']} rejected." in card
    )
    reasons = tables(sections["Rejections"])[1:]
    assert reasons == [
        [stage, code, str(count)]
        for stage in order
        for code, count in stages[stage].get("reasons", {}).items()
    ]
    assert [
        "validate",
        "logic.ungrounded_answer",
        str(validate["reasons"]["logic.ungrounded_answer"]),
    ] in reasons

    general = report["general"]
    assert (
        f"{general['used']} general conversations of {general['available']} available "
        f"({general['wanted']} wanted) make up {100 * general['ratio']:.2f}% of the training "
        f"split; {len(general['problems'])} lines could not be used." in card
    )
    decon = report["decontamination"]
    assert (
        f"a {decon['ngram']}-word n-gram with an evaluation set are dropped: "
        f"{curate['reasons']['curate.contaminated']} in all." in card
    )
    sizes = decon.get("sets", {})
    assert tables(sections["Decontamination"])[1:] == [
        [name, str(sizes.get(name, "?")), str(decon["hits"].get(name, 0))]
        for name in {**sizes, **decon["hits"]}
    ]

    shown = yaml.safe_load(config_block.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert shown == project.model_dump(mode="json", by_alias=True)

    # Nothing else: every number outside the config is one of the stats or the step counts.
    known = set().union(*(numbers_in(stats) for stats in stages.values()))
    known |= {str(n) for counts in expected_steps.values() for n in [*counts, *counts.values()]}
    known |= {f"{100 * general['ratio']:.2f}", str(len(general["problems"]))}
    stray = set(re.findall(r"\d+(?:\.\d+)?", body)) - known
    assert not stray, stray

    # Every export of the run loads back with the sizes the card shows.
    export = json.loads((out / "stats.json").read_text())
    assert export["sizes"] == report["split"]
    for split in SPLITS:
        assert sum(1 for _ in read_jsonl(out / f"{split}.chat.jsonl")) == report["split"][split]
