"""Near-duplicate detection with MinHash over word shingles and LSH banding.

One implementation serves seed mining, expansion checks and curation. The Jaccard similarity
of two texts' shingle sets is estimated by the share of equal MinHash slots; banding finds
candidate pairs without comparing every pair.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable

import numpy as np

_PRIME = np.uint64((1 << 61) - 1)
_WORD = re.compile(r"\w+", re.UNICODE)


def shingles(text: str, size: int = 3) -> set[str]:
    """Word n-grams of a lower-cased text (the whole text when it is shorter than n words)."""
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


class MinHasher:
    """Signatures of `permutations` slots; equal seeds give equal signatures across runs.

    A text's set is its word `shingle_size`-grams, or whatever `grams` makes of it."""

    def __init__(
        self,
        permutations: int = 128,
        shingle_size: int = 3,
        seed: int = 1,
        grams: Callable[[str], set[str]] | None = None,
    ):
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, int(_PRIME), permutations, dtype=np.uint64)
        self.b = rng.integers(0, int(_PRIME), permutations, dtype=np.uint64)
        self.shingle_size = shingle_size
        self.grams = grams

    def signature(self, text: str) -> np.ndarray:
        made = self.grams(text) if self.grams else shingles(text, self.shingle_size)
        grams = made or {""}
        hashes = np.array(
            [
                int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little") >> 3
                for g in grams
            ],
            dtype=np.uint64,
        )
        # (a*x + b) mod p, computed with wrap-around uint64 arithmetic: a universal-enough hash.
        mixed = (np.outer(hashes, self.a) + self.b) % _PRIME
        return mixed.min(axis=0)


def similarity(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.mean(first == second))


class NearDuplicates:
    """An index that answers: is this text a near-duplicate of one already added?"""

    def __init__(
        self,
        threshold: float = 0.8,
        permutations: int = 128,
        bands: int = 32,
        grams: Callable[[str], set[str]] | None = None,
    ):
        if permutations % bands:
            raise ValueError("permutations must be a multiple of bands")
        self.threshold = threshold
        self.hasher = MinHasher(permutations, grams=grams)
        self.rows = permutations // bands
        self.buckets: list[dict[bytes, list[str]]] = [defaultdict(list) for _ in range(bands)]
        self.signatures: dict[str, np.ndarray] = {}

    def nearest(self, text: str) -> tuple[str | None, float]:
        """The most similar indexed key among the LSH candidates, and its similarity."""
        return self._nearest(self.hasher.signature(text))

    def _nearest(self, signature: np.ndarray) -> tuple[str | None, float]:
        best, best_score = None, 0.0
        seen: set[str] = set()
        for band, bucket in enumerate(self.buckets):
            for key in bucket.get(self._band(signature, band), ()):
                if key in seen:
                    continue
                seen.add(key)
                score = similarity(signature, self.signatures[key])
                if score > best_score:
                    best, best_score = key, score
        return best, best_score

    def add(self, key: str, text: str) -> tuple[str | None, float]:
        """Index `text` under `key` unless it is a near-duplicate; returns the match if it is."""
        signature = self.hasher.signature(text)
        match, score = self._nearest(signature)
        if match is not None and score >= self.threshold:
            return match, score
        self._index(key, signature)
        return None, score

    def index(self, key: str, text: str) -> None:
        """Index `text` under `key` whatever is already there."""
        self._index(key, self.hasher.signature(text))

    def _index(self, key: str, signature: np.ndarray) -> None:
        self.signatures[key] = signature
        for band, bucket in enumerate(self.buckets):
            bucket[self._band(signature, band)].append(key)

    def _band(self, signature: np.ndarray, band: int) -> bytes:
        return signature[band * self.rows : (band + 1) * self.rows].tobytes()
