"""The expansion stages: `expand` (per seed: the seed itself, rewrites, variations),
`combine` (multi-step tasks from two or three others) and `tasks` (the union, deduplicated,
with the diversity it achieved before and after).

Multipliers are additive, as users count them: with 200 seeds and the defaults 1.5 / 2 / 1.5
the stage aims for 200 seeds + 300 rewrites + 400 variations + 300 combinations = 1,200 tasks.
A seed's share of a fractional multiplier is decided by a hash of its id, so the total comes
out close to the target and every run decides the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field

from fcsft.expand.checks import check_combination, check_rewrite, near_copy, verdict
from fcsft.expand.diversity import diversity
from fcsft.expand.vary import vary
from fcsft.jsonl import read_jsonl
from fcsft.models.ask import ask, one_line, string_list
from fcsft.models.client import records_at_once
from fcsft.records import Seed, Task
from fcsft.section import Section
from fcsft.stage import Outcome, Stage
from fcsft.text.minhash import NearDuplicates

REWRITE_PROMPT = """\
Rewrite the question below in {n} different ways. Keep every name, number and date exactly \
as written and ask for exactly the same thing; change only the wording.
Question: {question}
Reply with a JSON list of {n} strings and nothing else."""

COMBINE_PROMPT = """\
Write one question that can only be answered by answering all of these, in order, where a \
later part uses the result of an earlier one (for example: find A, then compare it with B).
{parts}
Keep every name, number and date exactly as written. Reply with the question only."""


class ExpandConfig(Section):
    model: str = "teacher"
    """Role (a key of `models`) of the model that writes rewrites and combinations."""
    rewrite: float = Field(1.5, ge=0)
    """Paraphrases per seed (additive: 1.5 means 300 rewrites for 200 seeds)."""
    vary: float = Field(2.0, ge=0)
    """Parameter variations per seed."""
    combine: float = Field(1.5, ge=0)
    """Multi-step combinations per seed."""
    pools: dict[str, list[str]] = Field(default_factory=dict)
    """Value pools for variation by slot kind, e.g. `company: [Orrin Dynamics, Vellum Bank]`."""
    near_copy: float = Field(0.8, gt=0, le=1)
    """Estimated Jaccard similarity at which a rewrite counts as a near-copy of its parent."""
    duplicate: float = Field(0.9, gt=0, le=1)
    """Similarity at which two tasks of the final set count as duplicates."""
    temperature: float = Field(0.8, ge=0)
    """Sampling temperature for rewrites and combinations."""
    seed: int = 0
    """Random seed for variation and pairing; the same seed gives the same tasks."""


def quota(multiplier: float, ident: str) -> int:
    """floor(m), plus one for the share of ids that the fractional part asks for."""
    fraction = int(hashlib.sha256(ident.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return math.floor(multiplier) + (fraction < multiplier - math.floor(multiplier))


def seed_task(seed: Seed) -> Task:
    """The seed as a task. It names no tools of its own: every configured tool is available."""
    return Task(
        id=seed.id,
        question=seed.question,
        followups=list(seed.followups),
        family=seed.id,
        how="seed",
        source=seed.source,
        domain=seed.domain,
        plan=list(seed.plan) if seed.plan else ([] if seed.no_tool else None),
        no_tool=seed.no_tool,
        environment=dict(seed.environment),
    )


def _passed(task: Task) -> Outcome:
    return Outcome(task.to_json())


def expand_stage(config: ExpandConfig, model: Any, model_name: str) -> Stage:
    """Per seed: the seed as a task, its rewrites and its variations, each checked."""

    async def process(obj: dict[str, Any]) -> list[Outcome]:
        seed = Seed.from_json(obj)
        base = seed_task(seed)
        outcomes = [_passed(base)]
        accepted = [base.question]
        wanted = quota(config.rewrite, seed.id)
        if wanted:
            outcomes += await _rewrites(base, wanted, accepted, config, model, model_name)
        for task in vary(base, quota(config.vary, seed.id), config.pools, config.seed):
            if _duplicate(task.question, accepted, config.duplicate):
                reason = "a near-copy of a task already kept"
                outcomes.append(Outcome(task.to_json(), [verdict("vary.duplicate", reason)]))
                continue
            accepted.append(task.question)
            counts = {"plan_dropped": 1} if base.plan and task.plan is None else {}
            outcomes.append(Outcome(task.to_json(), counts=counts))
        return outcomes

    return Stage(
        "expand",
        process,
        config={"expand": config.model_dump(mode="json"), "model": model_name},
        parallel=records_at_once(model),
    )


def _duplicate(text: str, kept: list[str], threshold: float) -> bool:
    return any(near_copy(text, other) >= threshold for other in kept)


async def _rewrites(
    base: Task, wanted: int, accepted: list[str], config: ExpandConfig, model: Any, model_name: str
) -> list[Outcome]:
    answer = await ask(
        model,
        model_name,
        REWRITE_PROMPT.format(n=wanted, question=base.question),
        temperature=config.temperature,
    )
    usage = answer.usage or {}
    if answer.error:
        return [Outcome(None, [verdict("rewrite.model_error", answer.error)], usage, retry=True)]
    texts = string_list(answer.text)
    if texts is None:
        return [
            Outcome(
                None, [verdict("rewrite.parse", f"no list in reply: {answer.text[:80]!r}")], usage
            )
        ]
    outcomes = []
    for number, text in enumerate(texts[:wanted], start=1):
        task = base.model_copy(
            update={
                "id": f"{base.id}~r{number}",
                "question": text,
                "how": "rewrite",
                "parents": [base.id],
            }
        )
        problems = check_rewrite(base.question, text, config.near_copy)
        if not problems and _duplicate(text, accepted, config.duplicate):
            problems = [verdict("rewrite.duplicate", "a near-copy of a rewrite already kept")]
        if not problems:
            accepted.append(text)
        outcomes.append(Outcome(task.to_json(), problems, usage if number == 1 else {}))
    return outcomes or [Outcome(None, [verdict("rewrite.parse", "an empty list")], usage)]


def combine_stage(config: ExpandConfig, model: Any, model_name: str, n_seeds: int) -> Stage:
    """Whole-set: pick groups of two or three tool-using tasks of different families, and ask
    the model for one question with a dependency between them."""

    async def process(records: list[dict[str, Any]]) -> list[tuple[str, list[Outcome]]]:
        tasks = [Task.from_json(obj) for obj in records]
        groups = pick_groups(tasks, round(config.combine * n_seeds), config.seed)
        results = await asyncio.gather(*(_combine(g, config, model, model_name) for g in groups))
        return [
            ("+".join(t.id for t in g), outcomes)
            for g, outcomes in zip(groups, results, strict=True)
        ]

    return Stage(
        "combine",
        process,
        config={"expand": config.model_dump(mode="json"), "model": model_name, "seeds": n_seeds},
        whole=True,
    )


def pick_groups(tasks: list[Task], count: int, seed: int) -> list[list[Task]]:
    """Deterministic groups of 2 (three in four) or 3 tasks from distinct families, with plans,
    without follow-ups (a combination is one question) and without an environment of their own
    (each part's calls assume its own starting state)."""
    usable = [
        t for t in tasks if t.plan and not t.no_tool and not t.followups and not t.environment
    ]
    families = sorted({t.family for t in usable})
    if len(families) < 2:
        return []
    rng = random.Random(f"combine:{seed}")
    by_family: dict[str, list[Task]] = {}
    for task in usable:
        by_family.setdefault(task.family, []).append(task)
    groups, seen = [], set()
    for _ in range(count * 5):
        if len(groups) == count:
            break
        size = 3 if rng.random() < 0.25 and len(families) >= 3 else 2
        chosen = [rng.choice(by_family[f]) for f in rng.sample(families, size)]
        key = tuple(t.id for t in chosen)
        if key not in seen:
            seen.add(key)
            groups.append(chosen)
    return groups


async def _combine(
    group: list[Task], config: ExpandConfig, model: Any, model_name: str
) -> list[Outcome]:
    parts = "\n".join(f"Part {k}: {t.question}" for k, t in enumerate(group, start=1))
    answer = await ask(
        model,
        model_name,
        COMBINE_PROMPT.format(parts=parts),
        temperature=config.temperature,
    )
    usage = answer.usage or {}
    if answer.error:
        return [Outcome(None, [verdict("combine.model_error", answer.error)], usage, retry=True)]
    question = one_line(answer.text)
    if question is None:
        return [Outcome(None, [verdict("combine.parse", "an empty reply")], usage)]
    first = group[0]
    task = first.model_copy(
        update={
            "id": "+".join(t.id for t in group),
            "question": question,
            "how": "combine",
            "parents": [t.id for t in group],
            "related": sorted({t.family for t in group[1:]} - {first.family}),
            "tools": sorted({name for t in group for name in t.tools}),
            "plan": [call for t in group for call in (t.plan or [])],
        }
    )
    problems = check_combination([t.question for t in group], question, config.near_copy)
    return [Outcome(task.to_json(), problems, usage)]


def tasks_stage(config: ExpandConfig, seeds_path: Path) -> Stage:
    """Whole-set: the union of expansions and combinations without near-duplicates."""

    def process(records: list[dict[str, Any]]) -> list[tuple[str, list[Outcome]]]:
        index = NearDuplicates(config.duplicate)
        out = []
        for obj in records:
            task = Task.from_json(obj)
            match, score = index.add(task.id, task.question)
            problems = (
                []
                if match is None
                else [verdict("tasks.duplicate", f"{score:.2f} similar to {match}")]
            )
            out.append((task.id, [Outcome(obj, problems)]))
        return out

    def report(directory: Path) -> dict[str, Any]:
        seeds = [obj["question"] for obj in read_jsonl(seeds_path)]
        tasks = [Task.from_json(obj) for obj in read_jsonl(directory / "out.jsonl")]
        return {
            "by_how": dict(Counter(t.how for t in tasks).most_common()),
            "with_plan": sum(t.plan is not None for t in tasks),
            "diversity_before": diversity(seeds),
            "diversity_after": diversity([t.question for t in tasks]),
        }

    return Stage("tasks", process, config=config.model_dump(mode="json"), whole=True, report=report)
