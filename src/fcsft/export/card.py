"""The dataset card: README.md with plots, every number read from the stages' own stats.

The card is the export folder's README.md, as the Hugging Face Hub and `datasets` expect: its
YAML front matter names the license, the task and one `datasets` config per exported format
with its file for each split, so `load_dataset(folder, "openai")` (or the Hub repo's id) loads
that format. It says what each format is for, shows a sample record and the token lengths, and
holds no absolute local path: paths in the config are shown relative to the project folder,
or as `<local>/NAME` when they lie outside it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from fcsft.errors import UserError
from fcsft.export import SPLITS
from fcsft.files import write_text
from fcsft.formats import get_format
from fcsft.jsonl import read_json_object, read_jsonl
from fcsft.plots import bars
from fcsft.step import Step, steps

# What each export is for; the versions it was checked against are in the README.
USES = {
    "openai": "OpenAI's chat fine-tuning upload, exactly its format (no thinking: it has no field)",
    "sharegpt": "LLaMA-Factory (`dataset_info.json` beside it)",
    "parquet": "`datasets`, TRL and transformers chat templates (tools and arguments as objects)",
    "chat": "your own trainer: text through the chat template, assistant spans, ids and mask",
}
SAMPLE_CHARS = 300  # strings of the sample record longer than this are cut
_ABSOLUTE = re.compile(r"(?:(?<=file://)|(?<![\w.~/]))/(?:[^/\s\"',;]+/)*[^/\s\"',;]+")


def _stats(run_dir: Path, step: Step) -> dict[str, Any]:
    path = run_dir / step.name / "stats.json"
    if not path.exists():
        return {}
    stats = read_json_object(path)
    if stats is None:
        again = (
            step.manual.format(run_dir=run_dir) if step.manual else f"fcsft run --from {step.name}"
        )
        raise UserError(f"{path} is unreadable; write it again with: {again}")
    return stats


def _stages(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Stats of every step before export that ran, in run order."""
    order = steps()
    before = order[: [entry.name for entry in order].index("export")]
    found = {entry.name: _stats(run_dir, entry) for entry in before}
    return {name: stats for name, stats in found.items() if stats}


def _steps(run_dir: Path, role: str = "assistant") -> dict[int, dict[str, int]]:
    """Messages of `role` (assistant turns, or user turns) per tool trajectory -> count per
    split (general conversations left out)."""
    steps: dict[str, Counter] = {split: Counter() for split in SPLITS}
    for record in read_jsonl(run_dir / "curate" / "out.jsonl"):
        meta = record["meta"]
        if meta.get("how") != "general":
            steps[meta["split"]][sum(m["role"] == role for m in record["messages"])] += 1
    return {
        n: {split: steps[split][n] for split in SPLITS}
        for n in sorted(set().union(*steps.values()))
    }


def _table(header: tuple[str, ...], rows: Iterable[Iterable[Any]]) -> list[str]:
    lines = [f"| {' | '.join(str(cell) for cell in row)} |" for row in rows]
    if not lines:
        return ["None."]
    return [f"| {' | '.join(header)} |", "|" + "---|" * len(header), *lines]


def portable(value: Any, base: Path) -> Any:
    """`value` with every absolute path made relative to `base`, or `<local>/NAME` outside it."""
    if isinstance(value, dict):
        return {key: portable(item, base) for key, item in value.items()}
    if isinstance(value, list):
        return [portable(item, base) for item in value]
    if not isinstance(value, str):
        return value

    def relative(match: re.Match[str]) -> str:
        path = Path(match.group(0))
        try:
            return str(path.relative_to(base)) if path != base else "."
        except ValueError:
            return f"<local>/{path.name}"

    return _ABSOLUTE.sub(relative, value)


def hub_configs(configs: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The formats the card lists as `datasets` configs: the JSON-lines ones. `datasets` reads
    every config of a folder with the builder its first config's files need, so parquet files
    cannot be a config beside JSON-lines ones; hf/ is loaded with `data_dir="hf"` instead."""
    return {
        fmt: files
        for fmt, files in configs.items()
        if all(path.endswith(".jsonl") for path in files.values())
    }


def front_matter(name: str, license_id: str, configs: dict[str, dict[str, str]]) -> str:
    """The card's YAML header: what the Hub shows and how `datasets` finds each format."""
    listed = hub_configs(configs)
    default = "openai" if "openai" in listed else next(iter(listed), None)
    header: dict[str, Any] = {
        "license": license_id,
        "task_categories": ["text-generation"],
        "tags": ["function-calling", "tool-use", "sft", "fcsft"],
        "pretty_name": name,
        "configs": [
            {
                "config_name": fmt,
                "data_files": [{"split": split, "path": path} for split, path in files.items()],
                **({"default": True} if fmt == default else {}),
            }
            for fmt, files in listed.items()
        ],
    }
    return f"---\n{yaml.safe_dump(header, sort_keys=False)}---\n"


def _shortened(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _shortened(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shortened(item) for item in value]
    if isinstance(value, str) and len(value) > SAMPLE_CHARS:
        return value[:SAMPLE_CHARS] + "…"
    return value


def sample_record(run_dir: Path) -> tuple[int, dict[str, Any]] | None:
    """The first training record that calls a tool (else the first one), as its line number in
    train.openai.jsonl and its OpenAI fine-tuning form."""
    records = [
        r for r in read_jsonl(run_dir / "curate" / "out.jsonl") if r["meta"]["split"] == "train"
    ]
    if not records:
        return None
    line = next(
        (k for k, r in enumerate(records) if any(m.get("tool_calls") for m in r["messages"])), 0
    )
    trajectory = get_format("openai").parse(records[line])
    return line + 1, get_format("openai-finetune").render(trajectory)


def _formats_section(name: str, export: dict[str, Any]) -> list[str]:
    configs = export.get("configs", {})
    lines = [
        "## Formats",
        "",
        "Each JSON-lines format is a `datasets` config of this folder or of its Hub repository "
        '(`datasets.load_dataset(FOLDER_OR_REPO, "openai")`); the parquet files load with '
        '`datasets.load_dataset(FOLDER_OR_REPO, data_dir="hf")`. Line N of every '
        "`SPLIT.*.jsonl` file and row N of `hf/SPLIT.parquet` are the same record; "
        '`SPLIT.meta.jsonl` holds its id and metadata (`"line": N`).',
        "",
        *_table(
            ("format", "files", "for"),
            (
                (fmt, ", ".join(f"`{path}`" for path in files.values()), USES[fmt])
                for fmt, files in configs.items()
            ),
        ),
    ]
    if "sharegpt" in configs:
        names = ", ".join(f"`{entry}`" for entry in export.get("llamafactory", []))
        lines += [
            "",
            f"LLaMA-Factory: set `dataset_dir` to this folder and `dataset` to {names} "
            "(named after the project, so several projects can share one `dataset_info.json`). "
            "Parallel results are one observation turn holding one `<tool_response>` block a "
            "result. Thinking inside a `function_call` turn needs LLaMA-Factory 0.9.2 or later; "
            "text shown beside calls and turn weights ride in keys LLaMA-Factory does not read.",
        ]
    return lines


def _tokens_section(export: dict[str, Any]) -> list[str]:
    tokens = export.get("tokens")
    lines = ["## Token lengths", ""]
    if tokens is None:
        return [
            *lines,
            "Not counted: add `chat` to `export.formats` to count them with "
            "`export.tokenizer` (the text the model is trained on).",
        ]
    return [
        *lines,
        "Tokens a record, through `export.tokenizer`'s chat template (the `chat` export).",
        "",
        *_table(
            ("split", "records", "min", "median", "p95", "max"),
            (
                (split, s["n"], s["min"], s["median"], s["p95"], s["max"])
                for split, s in tokens.items()
            ),
        ),
    ]


def _sample_section(run_dir: Path, export: dict[str, Any], base: Path) -> list[str]:
    found = sample_record(run_dir)
    if found is None:
        return []
    line, record = found
    where = (
        f"line {line} of `train.openai.jsonl`"
        if "openai" in export.get("configs", {})
        else "in OpenAI's fine-tuning format"
    )
    return [
        "## Sample record",
        "",
        f"A training record ({where}); strings longer than {SAMPLE_CHARS} characters are cut.",
        "",
        "```json",
        json.dumps(portable(_shortened(record), base), ensure_ascii=False, indent=2),
        "```",
    ]


def write_card(
    run_dir: Path,
    out: Path,
    config: dict[str, Any],
    name: str,
    export: dict[str, Any] | None = None,
    base: Path | None = None,
) -> Path:
    """Write README.md and its PNG plots into `out`; returns the card's path. `export` is what
    `export_dataset` returned; `base` the project folder that config paths are shown from."""
    export = export or {}
    base = base or run_dir.parent
    stages = _stages(run_dir)
    validate, curate = stages.get("validate", {}), stages.get("curate", {})
    curate_reasons = curate.get("reasons", {})
    report = curate.get("report", {})
    split, families = report.get("split", {}), report.get("families", {})
    general, decon = report.get("general", {}), report.get("decontamination", {})
    sizes, hits = decon.get("sets", {}), decon.get("hits", {})
    target = report.get("tools_target", {})
    before = {tool: report.get("tools_before", {}).get(tool, 0) for tool in target}
    after = {tool: report.get("tools_after", {}).get(tool, 0) for tool in target}
    reasons = [
        (stage, code, count)
        for stage, stats in stages.items()
        for code, count in stats.get("reasons", {}).items()
    ]
    steps, user_turns = _steps(run_dir), _steps(run_dir, "user")
    plots = {
        "tools.png": (
            "Calls per tool, before and after balancing",
            {"before": before, "after": after},
            False,
        ),
        "steps.png": (
            "Assistant steps per tool trajectory",
            {side: {str(n): counts[side] for n, counts in steps.items()} for side in SPLITS},
            False,
        ),
        "rejections.png": ("Rejections by reason", {"count": {c: n for _, c, n in reasons}}, True),
    }
    out.mkdir(parents=True, exist_ok=True)
    for file, (title, series, horizontal) in plots.items():
        bars(out / file, title, series, horizontal=horizontal, counts=True)
    lines = [
        front_matter(
            name, config.get("export", {}).get("license", "unknown"), export.get("configs", {})
        ),
        f"# {name}: function-calling SFT dataset",
        "",
        "Made by fcsft. Every number below is read from the stages' `stats.json`, except the",
        "steps and user turns per trajectory, which are counted in `curate/out.jsonl`, and the",
        "sample record.",
        "",
        *_formats_section(name, export),
        "",
        "## Size",
        "",
        *_table(
            ("split", "records", "tool families"),
            ((side, split.get(side, 0), families.get(side, 0)) for side in SPLITS),
        ),
        "",
        f"The training split includes {general.get('used', 0)} general conversations, which "
        "curate counts among its inputs and outputs.",
        "",
        *_table(
            ("stage", "in", "out", "rejected"),
            (
                (stage, stats.get("in", 0), stats.get("out", 0), stats.get("rejected", 0))
                for stage, stats in stages.items()
            ),
        ),
        "",
        "## Tool distribution",
        "",
        "Calls per tool in the training split, before and after balancing "
        f"({curate_reasons.get('curate.balanced_out', 0)} trajectories dropped).",
        "",
        "![calls per tool](tools.png)",
        "",
        *_table(
            ("tool", "before", "after", "target share"),
            ((tool, before[tool], after[tool], share) for tool, share in target.items()),
        ),
        "",
        "Under-represented (under half their target share; need more seeds): "
        + (", ".join(report.get("under_represented", [])) or "none")
        + ".",
        "",
        "## Steps per trajectory",
        "",
        "Assistant turns per tool trajectory (general conversations left out).",
        "",
        "![steps](steps.png)",
        "",
        *_table(
            ("assistant steps", *SPLITS),
            ((n, *(counts[side] for side in SPLITS)) for n, counts in steps.items()),
        ),
        "",
        "## User turns per trajectory",
        "",
        "User turns per tool trajectory: the question and each follow-up.",
        "",
        *_table(
            ("user turns", *SPLITS),
            ((n, *(counts[side] for side in SPLITS)) for n, counts in user_turns.items()),
        ),
        "",
        "## Rejections",
        "",
        f"Validation checked {validate.get('in', 0)} trajectories: {validate.get('out', 0)} "
        f"kept, {validate.get('rejected', 0)} rejected. A record rejected for several reasons "
        "counts under each.",
        "",
        "![rejections](rejections.png)",
        "",
        *_table(("stage", "reason", "count"), reasons),
        "",
        "## General instruction mix",
        "",
        f"{general.get('used', 0)} general conversations of {general.get('available', 0)} "
        f"available ({general.get('wanted', 0)} wanted) make up "
        f"{100 * general.get('ratio', 0.0):.2f}% of the training split; "
        f"{len(general.get('problems', []))} lines could not be used. "
        f"{general.get('with_tools', 0)} of them are offered a training record's functions "
        "and answer without calling one.",
        "",
        "## Decontamination",
        "",
        f"Candidates whose question equals or nearly equals an evaluation question, shares a "
        f"{decon.get('ngram', '?')}-word n-gram with one, or that offer an evaluation item's own "
        f"function are dropped: {curate_reasons.get('curate.contaminated', 0)} in all (each "
        f"beside the item it matched in curate/{decon.get('file', 'contamination.jsonl')}).",
        "",
        *_table(
            ("evaluation set", "items", "matching candidates"),
            ((source, sizes.get(source, "?"), hits.get(source, 0)) for source in {**sizes, **hits}),
        ),
        "",
        *_tokens_section(export),
        "",
        *_sample_section(run_dir, export, base),
        "",
        "## Config",
        "",
        "```yaml",
        yaml.safe_dump(portable(config, base), sort_keys=False).rstrip(),
        "```",
        "",
    ]
    card = out / "README.md"
    write_text(card, "\n".join(lines))
    return card
