"""Memories on disk: `MEMORY.md` as the index, one markdown file per topic.

    MEMORY.md                 # Memory
                              - [teacher](teacher.md): 3
    teacher.md                # teacher
                              - Always pass max_results to search. (why: omitted in 7 of 40)

Updates merge: an exact repeat is dropped, and a memory close to an existing one in the same
topic replaces it (newer replaces outdated). Every write happens under an exclusive file lock
and lands by rename, so two processes never lose each other's update and a crash never
leaves half a file. A file that does not parse is reported and left untouched.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fcsft.errors import UserError
from fcsft.files import read_text, write_text

_ENTRY = re.compile(r"^- (?P<text>.+?) \(why: (?P<why>.*)\)$")
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Memory:
    topic: str
    text: str
    why: str = ""


class MemoryCorrupt(UserError):
    """A memory file that does not parse; fcsft will not overwrite it."""


def slug(topic: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", topic.lower()).strip("-") or "general"


def _similar(first: str, second: str) -> float:
    a, b = set(_WORD.findall(first.lower())), set(_WORD.findall(second.lower()))
    return len(a & b) / len(a | b) if a | b else 1.0


class MemoryWriter:
    def __init__(self, root: Path, replace_at: float = 0.6):
        self.root = Path(root)
        self.replace_at = replace_at

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read(self, topic: str) -> list[Memory]:
        path = self.root / f"{slug(topic)}.md"
        if not path.exists():
            return []
        lines = read_text(path).splitlines()
        if not lines or not lines[0].startswith("# "):
            raise MemoryCorrupt(f"{path}:1: expected a '# topic' heading; fix or move the file")
        memories = []
        for number, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            found = _ENTRY.match(line)
            if not found:
                raise MemoryCorrupt(
                    f"{path}:{number}: expected '- text (why: reason)'; "
                    "fix or move the file, fcsft will not overwrite it"
                )
            memories.append(Memory(lines[0][2:], found["text"], found["why"]))
        return memories

    def topics(self) -> list[str]:
        return sorted(p.stem for p in self.root.glob("*.md") if p.name != "MEMORY.md")

    def add(self, memories: Iterable[Memory]) -> dict[str, int]:
        """Merge memories in; returns counts of added, replaced and duplicate ones."""
        result = {"added": 0, "replaced": 0, "duplicate": 0}
        with self._locked():
            by_topic: dict[str, list[Memory]] = {}
            for memory in memories:
                by_topic.setdefault(memory.topic, []).append(memory)
            for topic, new in by_topic.items():
                current = self.read(topic)
                for memory in new:
                    outcome = _merge(current, memory, self.replace_at)
                    result[outcome] += 1
                self._write_topic(topic, current)
            self._write_index()
        return result

    def forget(self, topic: str, text: str) -> bool:
        """Remove the memory of `topic` whose text contains `text`; whether one was removed."""
        with self._locked():
            current = self.read(topic)
            kept = [m for m in current if text.lower() not in m.text.lower()]
            if len(kept) == len(current):
                return False
            if kept:
                self._write_topic(topic, kept)
            else:
                (self.root / f"{slug(topic)}.md").unlink()
            self._write_index()
            return True

    def _write_topic(self, topic: str, memories: list[Memory]) -> None:
        body = [f"# {topic}", ""] + [f"- {m.text} (why: {m.why})" for m in memories]
        write_text(self.root / f"{slug(topic)}.md", "\n".join(body) + "\n")

    def _write_index(self) -> None:
        lines = ["# Memory", ""]
        for name in self.topics():
            count = len(self.read(name))
            lines.append(f"- [{name}]({name}.md): {count}")
        write_text(self.root / "MEMORY.md", "\n".join(lines) + "\n")


def _merge(current: list[Memory], memory: Memory, replace_at: float) -> str:
    for index, old in enumerate(current):
        if old.text.strip().lower() == memory.text.strip().lower():
            return "duplicate"
        if _similar(old.text, memory.text) >= replace_at:
            current[index] = Memory(old.topic, memory.text, memory.why)
            return "replaced"
    current.append(Memory(current[0].topic if current else memory.topic, memory.text, memory.why))
    return "added"
