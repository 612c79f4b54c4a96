"""Decontamination: no training item may share a long word n-gram with an evaluation item."""

from __future__ import annotations

import re
from collections.abc import Iterable

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class Contamination:
    """The n-grams of every evaluation set, and which set each came from."""

    def __init__(self, n: int = 8):
        self.n = n
        self.owner: dict[tuple[str, ...], str] = {}
        self.sizes: dict[str, int] = {}
        """How many texts each evaluation set brought, by name, in the order they were added."""

    def add(self, name: str, texts: Iterable[str]) -> None:
        self.sizes.setdefault(name, 0)
        for text in texts:
            self.sizes[name] += 1
            for gram in ngrams(text, self.n):
                self.owner.setdefault(gram, name)

    def hits(self, text: str) -> set[str]:
        """The evaluation sets this text shares an n-gram with."""
        return {self.owner[g] for g in ngrams(text, self.n) if g in self.owner}
