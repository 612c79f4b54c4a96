"""How varied a set of questions is: distinct n-gram ratio and nearest-neighbour similarity."""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np

from fcsft.text.minhash import MinHasher, shingles

BINS = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0001]


def distinct_ngram_ratio(texts: Iterable[str], n: int = 2) -> float:
    """Unique word n-grams over all n-grams: 1.0 when no two questions share a phrase."""
    total = 0
    unique: set[str] = set()
    for text in texts:
        words = text.lower().split()
        grams = [" ".join(words[i : i + n]) for i in range(len(words) - n + 1)]
        total += len(grams)
        unique.update(grams)
    return round(len(unique) / total, 4) if total else 0.0


def nearest_similarities(texts: list[str]) -> np.ndarray:
    """Each text's highest estimated Jaccard similarity to any other text."""
    if len(texts) < 2:
        return np.zeros(len(texts))
    hasher = MinHasher(permutations=64)
    signatures = np.stack([hasher.signature(text) for text in texts])
    best = np.zeros(len(texts))
    for row in range(len(texts)):
        equal = (signatures == signatures[row]).mean(axis=1)
        equal[row] = 0.0
        best[row] = equal.max()
    return best


def diversity(texts: list[str]) -> dict[str, object]:
    nearest = nearest_similarities(texts)
    counts, _ = np.histogram(nearest, bins=BINS)
    labels = [f"{low:.1f}-{min(high, 1.0):.1f}" for low, high in itertools.pairwise(BINS)]
    return {
        "n": len(texts),
        "distinct_2gram_ratio": distinct_ngram_ratio(texts),
        "distinct_3gram_ratio": distinct_ngram_ratio(texts, 3),
        "mean_nearest_similarity": round(float(nearest.mean()), 4) if len(texts) else 0.0,
        "nearest_similarity_histogram": dict(zip(labels, map(int, counts), strict=True)),
        "shingle_vocabulary": len(set().union(*(shingles(t) for t in texts))) if texts else 0,
    }
