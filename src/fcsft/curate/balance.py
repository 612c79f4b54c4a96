"""Balance the tool distribution by downsampling over-represented tools.

The share of calls per tool is what a model learns as its prior: 70% search and 10% python
teaches it to search when it should compute. Balancing removes, one at a time, the trajectory
that leans hardest on the most over-represented tool, as long as that brings the distribution
closer to the target and the drop stays within `max_drop`. Tools left far under their target
cannot be fixed by removing data: the report names them as needing more seeds.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Balanced:
    keep: list[str]
    dropped: list[str]
    before: dict[str, int]
    after: dict[str, int]
    target: dict[str, float]
    under: list[str] = field(default_factory=list)


def _distance(counts: Counter, target: dict[str, float]) -> float:
    total = sum(counts.values()) or 1
    return sum(abs(counts[tool] / total - share) for tool, share in target.items())


def balance(
    usage: dict[str, Counter],
    target: dict[str, float] | None = None,
    tolerance: float = 0.05,
    max_drop: float = 0.3,
) -> Balanced:
    """`usage` maps record id -> calls per tool; records without calls are left alone."""
    counts: Counter = Counter()
    for calls in usage.values():
        counts.update(calls)
    tools = sorted(counts)
    if target is None:
        target = {tool: 1 / len(tools) for tool in tools} if tools else {}
    else:
        norm = sum(target.values()) or 1
        target = {tool: target.get(tool, 0.0) / norm for tool in sorted(set(tools) | set(target))}
    before = dict(counts)
    kept = {ident for ident, calls in usage.items() if calls}
    budget = int(max_drop * len(kept))
    order = {ident: hashlib.sha256(ident.encode()).hexdigest() for ident in usage}
    dropped: list[str] = []
    while len(dropped) < budget and counts:
        total = sum(counts.values())
        over = max(target, key=lambda tool: (counts[tool] / total - target[tool], tool))
        if counts[over] / total - target[over] <= tolerance:
            break
        candidates = [i for i in kept if usage[i][over]]
        if not candidates:
            break
        pick = max(candidates, key=lambda i: (usage[i][over] / sum(usage[i].values()), order[i]))
        trial = counts - usage[pick]
        if _distance(trial, target) >= _distance(counts, target):
            break
        counts = trial
        kept.discard(pick)
        dropped.append(pick)
    total = sum(counts.values()) or 1
    under = [tool for tool, share in target.items() if counts[tool] / total < share / 2]
    gone = set(dropped)
    keep = [ident for ident in usage if ident not in gone]
    return Balanced(
        keep=keep, dropped=dropped, before=before, after=dict(counts), target=target, under=under
    )
