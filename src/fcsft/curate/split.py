"""Train/test split by family: a seed and everything made from it land on one side.

Combinations tie families together (a task made of A's and B's questions carries both), so
families are joined into components first; held-out tools pull their whole component into
test, so the out-of-distribution layer calls functions the model never saw in training.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


class Families:
    """Union-find over family ids."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, family: str) -> str:
        self.parent.setdefault(family, family)
        root = family
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[family] != root:  # path compression
            self.parent[family], family = root, self.parent[family]
        return root

    def join(self, families: Iterable[str]) -> None:
        families = list(families)
        for other in families[1:]:
            first, second = self.find(families[0]), self.find(other)
            if first != second:
                self.parent[max(first, second)] = min(first, second)


def _unit(text: str, seed: int) -> float:
    return int(hashlib.sha256(f"{seed}:{text}".encode()).hexdigest()[:12], 16) / 16**12


def assign_splits(
    items: list[tuple[str, list[str], set[str]]],
    test_share: float,
    seed: int = 0,
    held_out_tools: Iterable[str] = (),
) -> dict[str, str]:
    """`items` are (family, related families, tools used); returns family -> "train" | "test".

    A component goes to test when it uses a held-out tool, else when the hash of its root falls
    under `test_share`: stable across runs and independent of the order of the records.
    """
    groups = Families()
    for family, related, _ in items:
        groups.join([family, *related])
    held = set(held_out_tools)
    forced = {groups.find(family) for family, _, tools in items if tools & held}
    side: dict[str, str] = {}
    for family, related, _ in items:
        for member in (family, *related):
            root = groups.find(member)
            test = root in forced or _unit(root, seed) < test_share
            side[member] = "test" if test else "train"
    return side
