"""Export the curated dataset in the formats trainers read.

    openai    train.openai.jsonl / test.openai.jsonl      (TRL, OpenAI, vLLM, most trainers)
    sharegpt  train.sharegpt.jsonl / test.sharegpt.jsonl + dataset_info.json (LLaMA-Factory)
    parquet   hf/train.parquet / hf/test.parquet          (`datasets.load_dataset("parquet")`)
    chat      train.chat.jsonl / test.chat.jsonl          (your own trainer, loss masked)

`chat` is the text the model is trained and served on, rendered through a tokenizer's chat
template by `fcsft.formats.chat_tokens` (the same code `fcsft train` and evaluation use), with the
assistant spans as character offsets and the token ids with their assistant mask.

Each file is written whole and atomically; the renderers are the ones in `fcsft.formats`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from fcsft.errors import UserError, require
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_json, write_jsonl
from fcsft.section import Section

SPLITS = ("train", "test")


class ExportConfig(Section):
    formats: list[Literal["openai", "sharegpt", "parquet", "chat"]] = Field(
        default_factory=lambda: ["openai", "sharegpt", "parquet"]
    )
    """Formats to write: openai JSONL, LLaMA-Factory ShareGPT, HuggingFace parquet, and `chat`
    (text through `tokenizer`'s chat template with the assistant spans marked for the loss)."""
    tokenizer: str = "local:smollm2"
    """Tokenizer whose chat template renders the `chat` format: `local:smollm2` (the embedded
    model) or `local:PATH` (a transformers folder); use the model you will train."""


Writer = Callable[[dict[str, list[dict[str, Any]]], Path, ExportConfig], list[str]]


def _by_split(curated: Path) -> dict[str, list[dict[str, Any]]]:
    parts: dict[str, list[dict[str, Any]]] = {split: [] for split in SPLITS}
    for obj in read_jsonl(curated):
        split = obj.get("meta", {}).get("split")
        if split not in parts:
            raise UserError(
                f"{curated}: record {obj.get('meta', {}).get('id')!r} has no split; "
                "export reads the curate stage's output"
            )
        parts[split].append(obj)
    return parts


def _jsonl(fmt: str) -> Writer:
    def write(parts: dict[str, list[dict[str, Any]]], out: Path, _: ExportConfig) -> list[str]:
        source, target = get_format("openai"), get_format(fmt)
        names = []
        for split, records in parts.items():
            name = f"{split}.{fmt}.jsonl"
            write_jsonl(out / name, (target.render(source.parse(r)) for r in records))
            names.append(name)
        if fmt == "sharegpt":
            write_json(out / "dataset_info.json", dataset_info())
            names.append("dataset_info.json")
        return names

    return write


def dataset_info() -> dict[str, Any]:
    """The entries LLaMA-Factory needs to read the ShareGPT files with tools."""
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
        f"fcsft_{split}": {
            "file_name": f"{split}.sharegpt.jsonl",
            "formatting": "sharegpt",
            "columns": columns,
            "tags": tags,
        }
        for split in SPLITS
    }


def _parquet(parts: dict[str, list[dict[str, Any]]], out: Path, _: ExportConfig) -> list[str]:
    """Messages as nested columns (TRL reads them as they are); tools and meta as JSON text,
    because every tool's parameter schema has a different shape."""
    pa = require("pyarrow", "train")
    pq = require("pyarrow.parquet", "train")
    call = pa.struct(
        [
            ("id", pa.string()),
            ("type", pa.string()),
            ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
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
        ]
    )
    schema = pa.schema(
        [
            ("id", pa.string()),
            ("messages", pa.list_(message)),
            ("tools", pa.string()),
            ("meta", pa.string()),
        ]
    )
    (out / "hf").mkdir(parents=True, exist_ok=True)
    names = []
    for split, records in parts.items():
        rows = [
            {
                "id": r["meta"]["id"],
                "messages": r["messages"],
                "tools": json.dumps(r["tools"], ensure_ascii=False),
                "meta": json.dumps(r["meta"], ensure_ascii=False),
            }
            for r in records
        ]
        table = pa.Table.from_pylist(rows, schema=schema)
        target = out / "hf" / f"{split}.parquet"
        tmp = target.with_name(f".{target.name}.tmp")
        pq.write_table(table, tmp)
        tmp.replace(target)
        names.append(f"hf/{split}.parquet")
    return names


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
        "meta": record["meta"],
    }


def _chat(parts: dict[str, list[dict[str, Any]]], out: Path, config: ExportConfig) -> list[str]:
    tokenizer = load_tokenizer(config.tokenizer)
    names = []
    for split, records in parts.items():
        name = f"{split}.chat.jsonl"
        write_jsonl(out / name, (chat_row(tokenizer, r) for r in records))
        names.append(name)
    return names


WRITERS: dict[str, Writer] = {
    "openai": _jsonl("openai"),
    "sharegpt": _jsonl("sharegpt"),
    "parquet": _parquet,
    "chat": _chat,
}


def export_dataset(curated: Path, out: Path, config: ExportConfig) -> dict[str, Any]:
    """Write every configured format; returns the files written and the split sizes."""
    parts = _by_split(curated)
    out.mkdir(parents=True, exist_ok=True)
    files = [name for fmt in config.formats for name in WRITERS[fmt](parts, out, config)]
    return {"files": files, "sizes": {split: len(records) for split, records in parts.items()}}
