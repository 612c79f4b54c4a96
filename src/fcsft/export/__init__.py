"""Export the curated dataset in the formats trainers read, as one folder the Hub loads.

    openai    train.openai.jsonl    OpenAI's chat fine-tuning format, exactly (`openai-finetune`)
    sharegpt  train.sharegpt.jsonl  LLaMA-Factory, with dataset_info.json naming the project
    parquet   hf/train.parquet      `datasets` / TRL / transformers: messages, tools and call
                                    arguments as structured (JSON) values
    chat      train.chat.jsonl      your own trainer: text, assistant spans, ids and loss mask
    (and the same with `test`)

Line N of every `SPLIT.*.jsonl` file and row N of `hf/SPLIT.parquet` are the same record;
`SPLIT.meta.jsonl` holds its id and metadata at line N (`{"line": N, "id": ..., ...}`), which
the consumer formats have no field for. The card (README.md, written by `fcsft.export.card`) lists
each format as a `datasets` config, so `load_dataset(folder, "openai")` and the Hub read it.

`chat` is the text the model is trained and served on, rendered through a tokenizer's chat
template by `fcsft.formats.chat_tokens` (the same code `fcsft train` and evaluation use),
with the assistant spans as character offsets and the token ids with their assistant mask; its
token counts are the card's token-length statistics.

Each file is written whole and atomically; the renderers are the ones in `fcsft.formats`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from fcsft.errors import UserError, require
from fcsft.formats import get_format, meta_json
from fcsft.jsonl import read_jsonl, write_json, write_jsonl
from fcsft.records import Trajectory
from fcsft.section import Section

SPLITS = ("train", "test")
FORMATS = ("openai", "sharegpt", "parquet", "chat")


class ExportConfig(Section):
    formats: list[Literal["openai", "sharegpt", "parquet", "chat"]] = Field(
        default_factory=lambda: ["openai", "sharegpt", "parquet"]
    )
    """Formats to write: OpenAI fine-tuning JSONL, LLaMA-Factory ShareGPT, HuggingFace parquet,
    and `chat` (text through `tokenizer`'s chat template with the assistant spans marked for
    the loss; also gives the card its token-length statistics)."""
    tokenizer: str = "local:smollm2"
    """Tokenizer whose chat template renders the `chat` format: `local:smollm2` (the embedded
    model) or `local:PATH` (a transformers folder); use the model you will train."""
    license: str = "unknown"
    """The dataset's license as a Hub identifier (`apache-2.0`, `cc-by-4.0`, `other`, ...),
    written into the card's front matter."""


class Parts:
    """The curated records of each split, parsed once, in file order."""

    def __init__(self, curated: Path):
        self.records: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
        for obj in read_jsonl(curated):
            split = obj.get("meta", {}).get("split")
            if split not in self.records:
                raise UserError(
                    f"{curated}: record {obj.get('meta', {}).get('id')!r} has no split; "
                    "export reads the curate stage's output"
                )
            self.records[split].append(obj)
        source = get_format("openai")
        self.trajectories = {
            split: [source.parse(r) for r in records] for split, records in self.records.items()
        }


Writer = Callable[[Parts, Path, ExportConfig, str], dict[str, str]]


def dataset_name(project: str) -> str:
    """A project's name as a dataset name: lower case, `_` for anything else than a-z0-9."""
    return re.sub(r"[^a-z0-9]+", "_", project.lower()).strip("_") or "fcsft"


def _consumer_jsonl(fmt: str, render: Callable[[Trajectory], dict[str, Any]]) -> Writer:
    def write(parts: Parts, out: Path, _: ExportConfig, __: str) -> dict[str, str]:
        files = {}
        for split, trajectories in parts.trajectories.items():
            name = f"{split}.{fmt}.jsonl"
            write_jsonl(out / name, (render(t) for t in trajectories))
            files[split] = name
        return files

    return write


def _sharegpt(trajectory: Trajectory) -> dict[str, Any]:
    """LLaMA-Factory's record: the format's own, less `meta` (in the sidecar), since extra
    columns of varying shape can stop `datasets` from loading the file."""
    record = get_format("sharegpt").render(trajectory)
    record.pop("meta")
    return record


def _write_sharegpt(parts: Parts, out: Path, config: ExportConfig, project: str) -> dict[str, str]:
    files = _consumer_jsonl("sharegpt", _sharegpt)(parts, out, config, project)
    write_json(out / "dataset_info.json", dataset_info(project))
    return files


def dataset_info(project: str) -> dict[str, Any]:
    """The entries LLaMA-Factory needs to read the ShareGPT files with tools, one a split,
    named after the project so two projects can share one `dataset_info.json`."""
    tags = {
        "role_tag": "from",
        "content_tag": "value",
        "user_tag": "human",
        "assistant_tag": "gpt",
        "observation_tag": "observation",
        "function_tag": "function_call",
        "system_tag": "system",
    }
    columns = {"messages": "conversations", "system": "system", "tools": "tools"}
    return {
        f"{dataset_name(project)}_{split}": {
            "file_name": f"{split}.sharegpt.jsonl",
            "formatting": "sharegpt",
            "columns": columns,
            "tags": tags,
        }
        for split in SPLITS
    }


def _parquet_schema(pa: Any, json_type: Any) -> Any:
    """Messages as nested columns (TRL reads them as they are); tool schemas, call arguments
    and meta as JSON values, because each tool's parameters have a different shape."""
    call = pa.struct(
        [
            ("id", pa.string()),
            ("type", pa.string()),
            ("function", pa.struct([("name", pa.string()), ("arguments", json_type)])),
        ]
    )
    message = pa.struct(
        [
            ("role", pa.string()),
            ("content", pa.string()),
            ("reasoning_content", pa.string()),
            ("tool_calls", pa.list_(call)),
            ("tool_call_id", pa.string()),
            ("name", pa.string()),
            ("is_error", pa.bool_()),
            ("weight", pa.int8()),
        ]
    )
    return pa.schema(
        [
            ("id", pa.string()),
            ("messages", pa.list_(message)),
            ("tools", pa.list_(json_type)),
            ("meta", json_type),
        ]
    )


def _parquet(parts: Parts, out: Path, _: ExportConfig, __: str) -> dict[str, str]:
    pa = require("pyarrow", "train")
    pq = require("pyarrow.parquet", "train")
    if not hasattr(pa, "json_"):
        raise UserError("the parquet export needs pyarrow 19 or later: pip install -U pyarrow")
    # Rows are built with the JSON values as text, then cast: pyarrow builds no extension
    # type from Python objects inside a struct.
    storage, schema = _parquet_schema(pa, pa.string()), _parquet_schema(pa, pa.json_())
    render = get_format("openai").render
    (out / "hf").mkdir(parents=True, exist_ok=True)
    files = {}
    for split, trajectories in parts.trajectories.items():
        rows = []
        for trajectory in trajectories:
            record = render(trajectory)  # call arguments are already JSON text
            rows.append(
                {
                    "id": trajectory.id,
                    "messages": record["messages"],
                    "tools": [json.dumps(tool, ensure_ascii=False) for tool in record["tools"]],
                    "meta": json.dumps(record["meta"], ensure_ascii=False),
                }
            )
        table = pa.Table.from_pylist(rows, schema=storage).cast(schema)
        target = out / "hf" / f"{split}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        pq.write_table(table, tmp)
        tmp.replace(target)
        files[split] = f"hf/{split}.parquet"
    return files


def load_tokenizer(spec: str) -> Any:
    """The tokenizer of `local:smollm2` or of the transformers folder `local:PATH`."""
    from fcsft.models.weights import EMBEDDED, model_folder

    scheme, _, name = spec.partition(":")
    if scheme != "local" or not name:
        raise UserError(f"export.tokenizer {spec!r}: expected local:smollm2 or local:PATH")
    transformers = require("transformers", "local")
    folder = model_folder(name) if name in EMBEDDED else Path(name).expanduser()
    if not (folder / "tokenizer_config.json").exists():
        raise UserError(
            f"export.tokenizer {spec!r}: {folder} holds no tokenizer (no tokenizer_config.json)"
        )
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    if not tokenizer.chat_template:
        raise UserError(f"export.tokenizer {spec!r}: the tokenizer has no chat template")
    return tokenizer


def chat_row(tokenizer: Any, record: dict[str, Any]) -> dict[str, Any]:
    """One curated record as its rendered text, assistant character spans, ids and mask.

    `text[start:end]` for each span is what the model learns to write (Python string offsets,
    i.e. code points); `input_ids` are the pieces tokenized one by one, as `fcsft train` does,
    so `assistant_masks` is exactly its loss mask.
    """
    from fcsft.formats.chat_tokens import segments, tokenize_segments

    pieces = segments(tokenizer, record)
    spans, position = [], 0
    for text, is_assistant in pieces:
        if is_assistant:
            spans.append([position, position + len(text)])
        position += len(text)
    example = tokenize_segments(tokenizer, pieces)
    return {
        "id": record["meta"]["id"],
        "text": "".join(text for text, _ in pieces),
        "assistant_spans": spans,
        "input_ids": example.input_ids,
        "assistant_masks": example.assistant_masks,
    }


def _chat(parts: Parts, out: Path, config: ExportConfig, _: str) -> dict[str, str]:
    tokenizer = load_tokenizer(config.tokenizer)
    files = {}
    for split, records in parts.records.items():
        name = f"{split}.chat.jsonl"
        write_jsonl(out / name, (chat_row(tokenizer, r) for r in records))
        files[split] = name
    return files


WRITERS: dict[str, Writer] = {
    "openai": _consumer_jsonl("openai", get_format("openai-finetune").render),
    "sharegpt": _write_sharegpt,
    "parquet": _parquet,
    "chat": _chat,
}


def token_lengths(out: Path) -> dict[str, dict[str, int]]:
    """Tokens a record in each split of the chat export: n, min, median, 95th percentile, max."""
    stats = {}
    for split in SPLITS:
        lengths = sorted(len(row["input_ids"]) for row in read_jsonl(out / f"{split}.chat.jsonl"))
        if lengths:
            stats[split] = {
                "n": len(lengths),
                "min": lengths[0],
                "median": lengths[(len(lengths) - 1) // 2],
                "p95": lengths[max(0, -(-95 * len(lengths) // 100) - 1)],
                "max": lengths[-1],
            }
    return stats


def export_dataset(
    curated: Path, out: Path, config: ExportConfig, project: str = "fcsft"
) -> dict[str, Any]:
    """Write every configured format and the meta sidecars; returns the files written, the
    split sizes, each format's file per split (the card's `configs`), the LLaMA-Factory
    dataset names and, with `chat`, the token-length statistics."""
    parts = Parts(curated)
    out.mkdir(parents=True, exist_ok=True)
    configs: dict[str, dict[str, str]] = {}
    for fmt in config.formats:
        configs[fmt] = WRITERS[fmt](parts, out, config, project)
    for split, trajectories in parts.trajectories.items():
        write_jsonl(
            out / f"{split}.meta.jsonl",
            ({"line": n, **meta_json(t)} for n, t in enumerate(trajectories, start=1)),
        )
    files = [name for fmt in config.formats for name in configs[fmt].values()]
    if "sharegpt" in config.formats:
        files.append("dataset_info.json")
    files += [f"{split}.meta.jsonl" for split in SPLITS]
    result: dict[str, Any] = {
        "files": files,
        "sizes": {split: len(records) for split, records in parts.records.items()},
        "configs": configs,
    }
    if "sharegpt" in config.formats:
        result["llamafactory"] = sorted(dataset_info(project))
    if "chat" in config.formats:
        result["tokens"] = token_lengths(out)
    return result
