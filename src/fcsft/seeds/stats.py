"""What a seed set covers, and the imbalances that later teach a model the wrong habit."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from fcsft.records import Seed


def seed_stats(
    seeds: Iterable[Seed], dominance: float = 0.5, min_no_tool: float = 0.05
) -> dict[str, Any]:
    """Counts by source, domain, tool, plan length and user turns (the question and its
    follow-ups); warnings for what looks lopsided."""
    seeds = list(seeds)
    tools: Counter = Counter()
    lengths: Counter = Counter()
    for seed in seeds:
        tools.update(call.name for call in seed.plan)
        lengths[len(seed.plan)] += 1
    no_tool = sum(seed.no_tool for seed in seeds)
    stats: dict[str, Any] = {
        "seeds": len(seeds),
        "by_source": dict(Counter(seed.source for seed in seeds).most_common()),
        "by_domain": dict(Counter(seed.domain or "-" for seed in seeds).most_common()),
        "by_tool": dict(tools.most_common()),
        "plan_length": dict(sorted(lengths.items())),
        "user_turns": dict(sorted(Counter(1 + len(seed.followups) for seed in seeds).items())),
        "no_tool_share": round(no_tool / len(seeds), 4) if seeds else 0.0,
        "warnings": [],
    }
    total_calls = sum(tools.values())
    for name, count in tools.items():
        share = count / total_calls
        if share > dominance and len(tools) > 1:
            others = ", ".join(sorted(set(tools) - {name}))
            stats["warnings"].append(
                f"{name} is {share:.0%} of planned calls: a tuned model learns to reach for it "
                f"when another tool fits; add seeds that need {others}"
            )
    if seeds and no_tool / len(seeds) < min_no_tool:
        stats["warnings"].append(
            f"only {no_tool} should-not-call seeds ({no_tool / len(seeds):.0%}); add questions "
            "that must be answered without tools, tagged no_tool"
        )
    return stats
