"""Confidence intervals for the proportions fcsft reports (accuracy, precision, rates)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Proportion:
    """k successes out of n, with a 95% Wilson score interval (sound at 0/n and n/n)."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {
            "k": self.k,
            "n": self.n,
            "value": round(self.value, 4),
            "ci95": [round(self.low, 4), round(self.high, 4)],
        }

    def __str__(self) -> str:
        return f"{self.value:.1%} ({self.k}/{self.n}, 95% CI {self.low:.1%}-{self.high:.1%})"


def wilson(k: int, n: int, z: float = 1.959964) -> Proportion:
    if n == 0:
        return Proportion(0, 0, 0.0, 1.0)
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    low = 0.0 if k == 0 else max(0.0, centre - spread)  # exact at the edges, not 1 - 1e-16
    high = 1.0 if k == n else min(1.0, centre + spread)
    return Proportion(k, n, low, high)
