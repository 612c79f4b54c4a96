"""The checks every expansion passes: not a near-copy, same meaning, not a duplicate."""

from __future__ import annotations

from fcsft.records import Verdict
from fcsft.text.minhash import MinHasher, similarity
from fcsft.text.terms import key_terms, missing_terms

_HASHER = MinHasher()


def near_copy(first: str, second: str) -> float:
    return similarity(_HASHER.signature(first), _HASHER.signature(second))


def verdict(rule: str, reason: str) -> Verdict:
    return Verdict(stage="expand", rule=rule, passed=False, reason=reason)


def check_rewrite(parent: str, candidate: str, threshold: float) -> list[Verdict]:
    """Reasons a paraphrase cannot stand in for its parent (empty when it can)."""
    if len(candidate.split()) < 3:
        return [verdict("rewrite.empty", f"too short to be a question: {candidate!r}")]
    problems = []
    score = near_copy(parent, candidate)
    if score >= threshold:
        problems.append(verdict("rewrite.near_copy", f"{score:.2f} similar to its parent"))
    lost = missing_terms(parent, candidate)
    added = (
        key_terms(candidate)
        - key_terms(parent)
        - {t for t in key_terms(candidate) if t in parent.lower()}
    )
    if lost or added:
        parts = [f"lost {sorted(lost)}" if lost else "", f"added {sorted(added)}" if added else ""]
        problems.append(verdict("rewrite.changed_meaning", "; ".join(p for p in parts if p)))
    return problems


def check_combination(parts: list[str], candidate: str, threshold: float) -> list[Verdict]:
    problems = []
    lost = set().union(*(missing_terms(part, candidate) for part in parts))
    if lost:
        problems.append(verdict("combine.lost_part", f"lost {sorted(lost)}"))
    closest = max(near_copy(part, candidate) for part in parts)
    if closest >= threshold:
        problems.append(verdict("combine.near_copy", f"{closest:.2f} similar to one part"))
    return problems
