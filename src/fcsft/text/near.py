"""Is a text one of a set of reference texts, or nearly? For questions of any length.

Texts are compared after normalisation (Unicode compatibility form, lower case, every run of
characters that are not letters or digits read as one space), first exactly, then by the
Jaccard similarity of their character 5-gram sets. Characters, not words: a question of six
words has one word 3-gram per word and a changed word moves a third of them, while its
character grams still say how much of the text is shared. MinHash with LSH banding
(fcsft.text.minhash) finds the candidates; the similarity reported is the exact Jaccard of the
best candidate's grams, never the MinHash estimate.
"""

from __future__ import annotations

import re
import unicodedata

from fcsft.text.minhash import NearDuplicates

_SEPARATORS = re.compile(r"[\W_]+", re.UNICODE)
GRAM = 5


def normalise(text: str) -> str:
    """`"What's the  weather?"` -> `"what s the weather"`."""
    return _SEPARATORS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def char_grams(text: str, size: int = GRAM) -> set[str]:
    """The character `size`-grams of the normalised text (the whole of a shorter one)."""
    text = normalise(text)
    if len(text) <= size:
        return {text} if text else set()
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def jaccard(first: set[str], second: set[str]) -> float:
    if not first and not second:
        return 1.0
    return len(first & second) / len(first | second)


class NearTexts:
    """Reference texts by key; `match` finds the one a text equals or nearly equals."""

    def __init__(self, threshold: float = 0.8):
        self.threshold = threshold
        self.exact: dict[str, str] = {}
        self.grams: dict[str, set[str]] = {}
        self.index = NearDuplicates(threshold, grams=char_grams)

    def add(self, key: str, text: str) -> None:
        normal = normalise(text)
        if not normal:
            return
        self.exact.setdefault(normal, key)
        self.grams[key] = char_grams(text)
        self.index.index(key, text)

    def match(self, text: str) -> tuple[str, float] | None:
        """(key, similarity) of the reference this text equals (1.0) or comes within the
        threshold of, or None."""
        normal = normalise(text)
        if not normal:
            return None
        if normal in self.exact:
            return self.exact[normal], 1.0
        key, _ = self.index.nearest(text)
        if key is None:
            return None
        score = jaccard(char_grams(text), self.grams[key])
        return (key, score) if score >= self.threshold else None
