"""The `chat` export (rendered text with assistant spans) and the finance example's card."""

import itertools
import json
import math
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
    assert result["files"] == [
        "train.chat.jsonl",
        "test.chat.jsonl",
        "train.meta.jsonl",
        "test.meta.jsonl",
    ]
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


def cut_from(shown, original) -> bool:
    """Whether `shown` is `original` with some strings cut short and ended with an ellipsis."""
    if isinstance(original, dict):
        return (
            isinstance(shown, dict)
            and shown.keys() == original.keys()
            and all(cut_from(shown[key], original[key]) for key in original)
        )
    if isinstance(original, list):
        return (
            isinstance(shown, list)
            and len(shown) == len(original)
            and all(cut_from(a, b) for a, b in zip(shown, original, strict=True))
        )
    if isinstance(original, str) and isinstance(shown, str) and shown != original:
        return shown.endswith("…") and original.startswith(shown[:-1])
    return shown == original


def numbers_in(value) -> set[str]:
    if isinstance(value, dict):
        return set().union(*(numbers_in(v) for v in value.values()), set())
    if isinstance(value, list):
        return set().union(*(numbers_in(v) for v in value), set())
    if isinstance(value, bool) or not isinstance(value, int | float):
        return set()
    return {str(value)}


@pytest.fixture(scope="module")
def finance_run(tmp_path_factory):
    """The finance example run through export with the mock teacher, as a user runs it."""
    from fcsft.config import load_config
    from fcsft.runner.pipeline import Run, run_pipeline

    root = tmp_path_factory.mktemp("finance")
    path = finance_project(root)
    project = load_config(path)
    run_pipeline(Run(project, root), until="validate")
    for command in ("curate", "export"):  # the two stage commands, as a user runs them
        result = fcsft(command, path, cwd=root, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
    assert "card:" in result.stdout
    return root, project


def portable_config(project, root: Path) -> dict:
    """The project's config as the card should show it: paths inside the project folder made
    relative to it, paths outside it as `<local>/NAME`, and no absolute path left."""

    def show(value):
        if isinstance(value, dict):
            return {key: show(item) for key, item in value.items()}
        if isinstance(value, list):
            return [show(item) for item in value]
        if isinstance(value, str):
            prefix, _, rest = value.partition(":") if ":/" in value else ("", "", value)
            if rest.startswith("/"):
                path = Path(rest)
                inside = path.is_relative_to(root)
                shown = str(path.relative_to(root)) if inside else f"<local>/{path.name}"
                return f"{prefix}:{shown}" if prefix else shown
        return value

    return show(project.model_dump(mode="json", by_alias=True))


def test_finance_card_renders_its_plots_and_every_number_is_a_stage_stat(finance_run):
    tmp_path, project = finance_run
    run, out = tmp_path / "run", tmp_path / "run" / "export"
    card = (out / "README.md").read_text()
    stages = {
        p.parent.name: json.loads(p.read_text())
        for p in run.glob("*/stats.json")
        if p.parent.name != "export"
    }
    export = json.loads((out / "stats.json").read_text())["report"]
    validate, curate = stages["validate"], stages["curate"]
    report = curate["report"]
    # The fixture exercises every part of the card.
    assert validate["rejected"] > 0 and report["general"]["used"] > 0
    assert report["split"]["test"] > 0 and report["decontamination"]["hits"]["heldout"] >= 1
    removed = list(read_jsonl(run / "curate" / "contamination.jsonl"))
    assert len(removed) == report["decontamination"]["hits"]["heldout"]
    assert all("Juniper Rail" in row["question"] for row in removed), removed
    assert curate["reasons"].get("curate.balanced_out", 0) > 0

    for image in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", card):
        assert (out / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(re.findall(r"!\[", card)) == 3

    front, body, config_block = (
        card.split("---\n", 2)[1],
        *card.split("---\n", 2)[2].split("## Config", 1),
    )
    assert yaml.safe_load(front)["configs"]
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
    users = tables(sections["User turns per trajectory"])
    expected_users = {split: Counter() for split in SPLITS}
    for record in kept:
        if record["meta"].get("how") != "general":
            said = sum(m["role"] == "user" for m in record["messages"])
            expected_users[record["meta"]["split"]][said] += 1
    assert users == [["user turns", *SPLITS]] + [
        [str(n), str(expected_users["train"][n]), str(expected_users["test"][n])]
        for n in sorted(expected_users["train"] | expected_users["test"])
    ]

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
        f"split; {len(general['problems'])} lines could not be used. "
        f"{general['with_tools']} of them are offered a training record's functions and answer "
        "without calling one." in card
    )
    decon = report["decontamination"]
    assert (
        f"{decon['ngram']}-word n-gram with one, or that offer an evaluation item's own function "
        f"are dropped: {curate['reasons']['curate.contaminated']} in all (each beside the item "
        f"it matched in curate/{decon['file']})." in card
    )
    sizes = decon.get("sets", {})
    assert tables(sections["Decontamination"])[1:] == [
        [name, str(sizes.get(name, "?")), str(decon["hits"].get(name, 0))]
        for name in {**sizes, **decon["hits"]}
    ]

    shown = yaml.safe_load(config_block.split("```yaml\n", 1)[1].split("```", 1)[0])
    assert shown == portable_config(project, tmp_path)
    for local in (str(tmp_path), str(FINANCE), str(Path.home())):
        assert local not in card

    # Token lengths: the chat export's own ids, counted here.
    lengths = {
        split: sorted(len(row["input_ids"]) for row in read_jsonl(out / f"{split}.chat.jsonl"))
        for split in SPLITS
    }
    assert tables(sections["Token lengths"]) == [
        ["split", "records", "min", "median", "p95", "max"],
        *(
            [
                split,
                str(len(ls)),
                str(ls[0]),
                str(ls[(len(ls) - 1) // 2]),
                str(ls[math.ceil(0.95 * len(ls)) - 1]),
                str(ls[-1]),
            ]
            for split, ls in lengths.items()
        ),
    ]

    # The sample is a line of the OpenAI export, long strings cut with an ellipsis.
    sample = json.loads(sections["Sample record"].split("```json\n", 1)[1].split("```", 1)[0])
    line = int(re.search(r"line (\d+) of `train.openai.jsonl`", sections["Sample record"])[1])
    assert any(m.get("tool_calls") for m in sample["messages"])
    exported = list(read_jsonl(out / "train.openai.jsonl"))[line - 1]
    assert cut_from(sample, exported)

    # Nothing else: every number outside the config and the sample is one of the stats or the
    # step and user-turn counts, but for the LLaMA-Factory version the card names and the p95 column.
    known = set().union(*(numbers_in(stats) for stats in [*stages.values(), export]))
    for counted_turns in (expected_steps, expected_users):
        known |= {str(n) for counts in counted_turns.values() for n in [*counts, *counts.values()]}
    known |= {f"{100 * general['ratio']:.2f}", str(len(general["problems"])), "95"}
    counted = body.replace("LLaMA-Factory 0.9.2", "LLaMA-Factory").replace(
        sections["Sample record"], ""
    )
    stray = set(re.findall(r"\d+(?:\.\d+)?", counted)) - known
    assert not stray, stray

    # Every export of the run loads back with the sizes the card shows.
    assert export["sizes"] == report["split"]
    for split in SPLITS:
        assert sum(1 for _ in read_jsonl(out / f"{split}.chat.jsonl")) == report["split"][split]


# A Qwen2.5-style template, written here: tools as JSON in the system turn, each call as
# {"name", "arguments": <object>} in <tool_call> tags, each result in its own <tool_response>.
TOOLS_TEMPLATE = """\
{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0].role == 'system' %}{{- messages[0].content }}{%- else %}{{- 'You help.' }}{%- endif %}
{{- '\\n\\n# Tools\\n\\n<tools>' }}
{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}
{{- '\\n</tools><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
{{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
"""

# LLaMA-Factory's converter separates parallel results this way (data/converter.py, 0.9.4+).
RESULT_BLOCKS = "\n</tool_response>\n<tool_response>\n"


def llamafactory_problems(example: dict, attr: dict) -> list[str]:
    """What LLaMA-Factory's ShareGPT converter and function formatter would refuse or skip in
    one record, checked here from its rules: roles alternate (user or observation, then
    assistant or function call), the count is even, a function call's value is JSON (after a
    <think>…</think> thought) holding calls with a name and arguments, tools is a JSON list."""
    tags, columns = attr["tags"], attr["columns"]
    messages = example[columns["messages"]]
    if messages and messages[0][tags["role_tag"]] == tags["system_tag"]:
        messages = messages[1:]
    problems = []
    odd = (tags["user_tag"], tags["observation_tag"])
    even = (tags["assistant_tag"], tags["function_tag"])
    calls = 0
    for index, message in enumerate(messages):
        role, value = message[tags["role_tag"]], message[tags["content_tag"]]
        if role not in (odd, even)[index % 2]:
            problems.append(f"turn {index}: role {role!r} out of turn")
        if not isinstance(value, str):
            problems.append(f"turn {index}: value is not a string")
            continue
        if role == tags["function_tag"]:
            body = re.sub(r"<think>(.*?)</think>", "", value, count=1, flags=re.DOTALL)
            try:
                parsed = json.loads(body)
            except json.JSONDecodeError:
                problems.append(f"turn {index}: function call is not JSON")
                continue
            items = parsed if isinstance(parsed, list) else [parsed]
            calls = len(items)
            if not all(isinstance(c.get("arguments"), dict) and c.get("name") for c in items):
                problems.append(f"turn {index}: a call without a name or object arguments")
        elif role == tags["observation_tag"] and len(value.split(RESULT_BLOCKS)) != calls:
            problems.append(f"turn {index}: {calls} calls but not as many result blocks")
    if len(messages) % 2:
        problems.append(f"{len(messages)} turns: LLaMA-Factory needs an even count")
    tools = json.loads(example[columns["tools"]] or "[]")
    if not isinstance(tools, list) or not all(isinstance(t.get("name"), str) for t in tools):
        problems.append("tools is not a JSON list of named functions")
    if not isinstance(example.get(columns["system"]) or "", str):
        problems.append("system is not a string")
    return problems


def test_finance_export_loads_in_each_consumers_own_terms(finance_run, tmp_path):
    import datasets
    import jsonschema

    from fcsft.formats import get_format
    from test_chat_tokens import char_tokenizer

    root, _ = finance_run
    out = root / "run" / "export"
    curated = list(read_jsonl(root / "run" / "curate" / "out.jsonl"))
    sizes = json.loads((out / "stats.json").read_text())["report"]["sizes"]
    lines = {split: list(read_jsonl(out / f"{split}.openai.jsonl")) for split in SPLITS}

    # OpenAI: every line valid against the fine-tuning format's schema, ids answer calls, the
    # metadata at the same line of the sidecar.
    schema = json.loads(
        (Path(__file__).parent / "data/openai-chat-finetune.schema.json").read_text()
    )
    validator = jsonschema.Draft202012Validator(schema)
    for split in SPLITS:
        meta = list(read_jsonl(out / f"{split}.meta.jsonl"))
        ids = [r["meta"]["id"] for r in curated if r["meta"]["split"] == split]
        assert [m["id"] for m in meta] == ids and len(lines[split]) == sizes[split]
        assert [m["line"] for m in meta] == list(range(1, len(ids) + 1))
        for number, line in enumerate(lines[split], start=1):
            errors = [e.message for e in validator.iter_errors(line)]
            assert not errors, f"{split}.openai.jsonl:{number}: {errors[:3]}"
            waiting: set[str] = set()
            for message in line["messages"]:
                for call in message.get("tool_calls", []):
                    assert isinstance(json.loads(call["function"]["arguments"]), dict)
                    waiting.add(call["id"])
                if message["role"] == "tool":
                    waiting.remove(message["tool_call_id"])
    assert any("tools" not in line for line in lines["train"])  # general chats: no []

    # datasets: every config the card lists, and the parquet folder, from the folder alone.
    card = (out / "README.md").read_text()
    front = yaml.safe_load(card.split("---\n", 2)[1])
    assert {c["config_name"] for c in front["configs"]} == {"openai", "sharegpt", "chat"}
    cache = tmp_path / "hf-cache"
    for config in front["configs"]:
        loaded = datasets.load_dataset(str(out), config["config_name"], cache_dir=str(cache))
        assert {split: len(loaded[split]) for split in SPLITS} == sizes, config["config_name"]
    parquet = datasets.load_dataset(str(out), data_dir="hf", cache_dir=str(cache))
    assert {split: len(parquet[split]) for split in SPLITS} == sizes

    # transformers: a parquet row through a chat template that uses tools renders each tool
    # and each call's arguments as the objects they are (no JSON in a JSON string).
    tokenizer = char_tokenizer()
    rendered_calls = 0
    for row, line in zip(parquet["train"], lines["train"], strict=True):
        text = tokenizer.apply_chat_template(
            row["messages"], tools=row["tools"], tokenize=False, chat_template=TOOLS_TEMPLATE
        )
        for tool in line.get("tools", []):
            assert json.dumps(tool, ensure_ascii=False) in text
        calls = [
            {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
            for m in line["messages"]
            for c in m.get("tool_calls", [])
        ]
        shown = [json.loads(b) for b in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text)]
        assert shown == calls
        rendered_calls += len(calls)
        results = [m["content"] for m in line["messages"] if m["role"] == "tool"]
        assert re.findall(r"<tool_response>\n(.*?)\n</tool_response>", text, re.DOTALL) == results
    assert rendered_calls > 0

    # LLaMA-Factory: its dataset_info entries, named after the project, and its converter's
    # rules over every ShareGPT record.
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"finance_quickstart_train", "finance_quickstart_test"}
    for split in SPLITS:
        attr = info[f"finance_quickstart_{split}"]
        assert attr["formatting"] == "sharegpt"
        records = list(read_jsonl(out / attr["file_name"]))
        assert len(records) == sizes[split]
        for number, record in enumerate(records, start=1):
            problems = llamafactory_problems(record, attr)
            assert not problems, f"{attr['file_name']}:{number}: {problems}"
        # The same trajectories, meta from the sidecar, as the project's parser reads them.
        meta = list(read_jsonl(out / f"{split}.meta.jsonl"))
        sharegpt = get_format("sharegpt")
        back = [
            sharegpt.parse({**r, "meta": {k: v for k, v in m.items() if k != "line"}})
            for r, m in zip(records, meta, strict=True)
        ]
        openai = get_format("openai")
        assert back == [openai.parse(r) for r in curated if r["meta"]["split"] == split]


def test_push_to_hub_without_a_reachable_hub_is_one_line(finance_run):
    root, _ = finance_run
    env = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_not_a_token", "HF_HUB_OFFLINE": "0"}
    result = fcsft(
        "export", root / "project.yaml", "--push-to-hub", "someone/finance", cwd=root, env=env
    )
    assert result.returncode == 2
    *progress, last = result.stderr.strip().splitlines()
    assert last.startswith("error: could not push ")
    assert "someone/finance" in last and "HF_TOKEN" in last
    # Before it only the step's own line (the export was already done).
    assert all(line.startswith("export: ") for line in progress if line.strip())
    assert "Traceback" not in result.stderr
    assert (root / "run" / "export" / "README.md").exists()  # the export itself was written
