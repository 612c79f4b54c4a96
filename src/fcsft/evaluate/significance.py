"""Is the difference between two models on the same items real? Paired tests only."""

from __future__ import annotations

import random
from math import comb


def mcnemar(first: list[int], second: list[int]) -> dict[str, float | int]:
    """Exact McNemar test on paired 0/1 outcomes: only the items where the two differ count."""
    if len(first) != len(second):
        raise ValueError("paired outcomes must have the same length")
    gained = sum(1 for a, b in zip(first, second, strict=True) if not a and b)
    lost = sum(1 for a, b in zip(first, second, strict=True) if a and not b)
    n = gained + lost
    tail = sum(comb(n, k) for k in range(min(gained, lost) + 1)) / 2**n if n else 1.0
    return {"gained": gained, "lost": lost, "p_value": min(1.0, 2 * tail)}


def bootstrap_difference(
    first: list[int], second: list[int], resamples: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean of second minus first, with a 95% percentile interval over resampled items."""
    n = len(first)
    if n == 0 or n != len(second):
        return {"difference": 0.0, "ci95_low": 0.0, "ci95_high": 0.0}
    rng = random.Random(seed)
    diffs = [b - a for a, b in zip(first, second, strict=True)]
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return {
        "difference": sum(diffs) / n,
        "ci95_low": means[int(0.025 * resamples)],
        "ci95_high": means[int(0.975 * resamples) - 1],
    }
