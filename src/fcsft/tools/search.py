"""The `search` built-in: BM25 over a local folder of .md and .txt documents.

Documents are cut into passages of a few paragraphs and the passages are indexed, so a hit
points at the part of a long document that matches and its snippet is that part; each
document appears at most once in the results, at its best passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from fcsft.errors import UserError, require
from fcsft.tools.function import FunctionTool

SUFFIXES = (".md", ".txt")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Passage:
    path: str  # relative to the corpus folder, with / separators
    title: str
    text: str


class SearchOptions(BaseModel):
    """What the `search` built-in indexes and how much it returns."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    folder: Path
    """Folder of .md and .txt documents, searched recursively."""
    max_k: int = Field(20, ge=1)
    """Most results one call may ask for."""
    passage_words: int = Field(120, ge=10)
    """Words per indexed passage (paragraphs are packed up to this size)."""
    snippet_chars: int = Field(300, ge=20)
    """Characters of the matching passage shown per result."""


class Corpus:
    """An indexed folder of documents; `search` is the function the model calls."""

    def __init__(self, options: SearchOptions):
        self.folder = options.folder
        if not self.folder.is_dir():
            raise UserError(f"search: corpus folder {self.folder} does not exist")
        self.max_k = options.max_k
        self.snippet_chars = options.snippet_chars
        self.passages = list(_passages(self.folder, options.passage_words))
        if not self.passages:
            raise UserError(f"search: no {' or '.join(SUFFIXES)} documents under {self.folder}")
        self._bm25s = require("bm25s", "search")
        self._index = self._bm25s.BM25()
        tokens = self._bm25s.tokenize(
            [f"{p.title}\n{p.text}" for p in self.passages], stopwords="en", show_progress=False
        )
        self._index.index(tokens, show_progress=False)

    def search(self, query: str, k: int = 5) -> list[dict[str, Any]] | str:
        """Search the local document collection with keywords.

        Args:
            query: Keywords to look for, e.g. "refund policy international orders".
            k: How many documents to return at most.
        """
        wanted = max(1, min(k, self.max_k))
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False)
        depth = min(len(self.passages), wanted * 4)
        found, scores = self._index.retrieve(tokens, k=depth, show_progress=False)
        hits: list[dict[str, Any]] = []
        seen: set[str] = set()
        for index, score in zip(found[0], scores[0], strict=True):
            passage = self.passages[int(index)]
            if score <= 0 or passage.path in seen:
                continue
            seen.add(passage.path)
            hits.append(
                {
                    "path": passage.path,
                    "title": passage.title,
                    "snippet": _shorten(passage.text, self.snippet_chars),
                }
            )
            if len(hits) == wanted:
                break
        return hits or f"no document matches {query!r}"


def search_tool(
    folder: Path | str, *, name: str = "search", timeout: float | None = 30.0, **options: Any
) -> FunctionTool:
    """A `search` tool over `folder`; `options` are other `SearchOptions` fields."""
    corpus = Corpus(SearchOptions(folder=folder, **options))
    description = (
        f"Search a collection of {len({p.path for p in corpus.passages})} local documents "
        "by keywords; returns the best matching documents with a title and a snippet."
    )
    return FunctionTool(corpus.search, name=name, description=description, timeout=timeout)


def _passages(folder: Path, words_per_passage: int):
    for file in sorted(folder.rglob("*")):
        if file.suffix.lower() not in SUFFIXES or not file.is_file():
            continue
        text = file.read_text(encoding="utf-8", errors="replace")
        relative = file.relative_to(folder).as_posix()
        title = _title(text) or file.stem
        for chunk in _chunks(text, words_per_passage):
            yield Passage(relative, title, chunk)


def _title(text: str) -> str:
    """A Markdown document's first heading, else its first non-empty line."""
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        heading = _HEADING.match(line)
        if heading:
            return heading.group(1)
    return lines[0].strip()[:120] if lines else ""


def _chunks(text: str, words_per_passage: int) -> list[str]:
    """Paragraphs packed into passages of about `words_per_passage` words."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in re.split(r"\n\s*\n", text):
        words = len(paragraph.split())
        if not words:
            continue
        if current and size + words > words_per_passage:
            chunks.append("\n\n".join(current))
            current, size = [], 0
        current.append(paragraph.strip())
        size += words
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def _shorten(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    return flat[:limit].rsplit(" ", 1)[0] + " …"
