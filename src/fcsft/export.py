"""Export the curated dataset in the formats trainers read.

    openai    train.openai.jsonl / test.openai.jsonl      (TRL, OpenAI, vLLM, most trainers)
    sharegpt  train.sharegpt.jsonl / test.sharegpt.jsonl + dataset_info.json (LLaMA-Factory)
    parquet   hf/train.parquet / hf/test.parquet          (`datasets.load_dataset("parquet")`)

Each file is written whole and atomically; the renderers are the ones in `fcsft.formats`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcsft.errors import UserError, require
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_json, write_jsonl

SPLITS = ("train", "test")


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


def _jsonl(fmt: str) -> Callable[[dict[str, list[dict[str, Any]]], Path], list[str]]:
    def write(parts: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
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


def _parquet(parts: dict[str, list[dict[str, Any]]], out: Path) -> list[str]:
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


WRITERS: dict[str, Callable[[dict[str, list[dict[str, Any]]], Path], list[str]]] = {
    "openai": _jsonl("openai"),
    "sharegpt": _jsonl("sharegpt"),
    "parquet": _parquet,
}


def export_dataset(curated: Path, out: Path, formats: list[str]) -> dict[str, Any]:
    """Write every requested format; returns the files written and the split sizes."""
    unknown = sorted(set(formats) - set(WRITERS))
    if unknown:
        raise UserError(f"unknown export formats {unknown}; known: {', '.join(sorted(WRITERS))}")
    parts = _by_split(curated)
    out.mkdir(parents=True, exist_ok=True)
    files = [name for fmt in formats for name in WRITERS[fmt](parts, out)]
    return {"files": files, "sizes": {split: len(records) for split, records in parts.items()}}
