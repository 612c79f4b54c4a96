"""The curate stage: from validated trajectories to a balanced, clean, leak-free train/test set.

In order: keep one trajectory per task (the one with fewest calls), drop exact and near
duplicates, drop training candidates that match an evaluation item (the same or nearly the
same question, a shared long n-gram, or one of its functions: fcsft.curate.decontaminate),
split by family, balance the tool distribution of the training side, and mix in general
instruction data at the configured share, itself decontaminated the same way (a share of it
offered the tools of a training record, answered without a call). Every user turn
of a conversation counts: two records are duplicates only when all their user turns and
calls match and they offer the same functions (one question asked with other functions on
offer teaches another choice), and a record is contaminated when any of its user turns
matches. Every dropped
record is kept in rejected.jsonl with its reason; out.jsonl carries `meta.split` on every
record; contamination.jsonl lists every record removed as contaminated beside the
evaluation item it matched.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from fcsft.benchmarks import bfcl
from fcsft.curate.balance import balance
from fcsft.curate.decontaminate import Contamination, EvalItem
from fcsft.curate.split import assign_splits
from fcsft.errors import UserError
from fcsft.formats import FormatError, get_format
from fcsft.jsonl import read_lines, write_jsonl
from fcsft.records import Trajectory, Verdict, canonical
from fcsft.section import Section
from fcsft.stage import Outcome, Stage
from fcsft.text.minhash import NearDuplicates

OPENAI = get_format("openai")


class CurateConfig(Section):
    test_share: float = Field(0.1, ge=0, lt=1)
    """Share of families (joined through combinations) that go to the test split."""
    held_out_tools: list[str] = Field(default_factory=list)
    """Tools seen only in test, for an out-of-distribution layer of truly unseen functions."""
    balance_target: dict[str, float] | None = None
    """Target share of calls per tool (normalised); uniform over the tools present if unset."""
    balance_tolerance: float = Field(0.05, ge=0)
    """How far above its target a tool's share may stay."""
    max_drop: float = Field(0.3, ge=0, le=1)
    """Most of the training set balancing may remove."""
    general: list[Path] = Field(default_factory=list)
    """General (no-tool) instruction data: openai-format JSONL files or folders of them."""
    general_ratio: float = Field(0.3, ge=0, lt=1)
    """Share of the final training set that is general data (0.3 keeps MMLU within 0.3%)."""
    general_with_tools: float = Field(0.0, ge=0, le=1)
    """Share of the general conversations offered the functions of a training record (picked
    by `seed`): each still answers without a call, which teaches that functions on offer are no
    reason to call one. At 0 a model sees tools only in conversations that call them."""
    near_duplicate: float = Field(0.9, gt=0, le=1)
    """MinHash similarity (question + call sequence) above which two records offering the same
    functions are duplicates."""
    decontaminate: list[Path] = Field(default_factory=list)
    """Evaluation sets (JSONL with `question`, or openai format) no training item may overlap."""
    decontaminate_bfcl: list[str] = Field(default_factory=list)
    """BFCL categories (simple_python, irrelevance, live_multiple, ...) no training item may
    overlap; their questions are read from the installed bfcl-eval package."""
    ngram: int = Field(8, ge=3)
    """Word n-gram length that counts as overlap with an evaluation set."""
    near_match: float = Field(0.7, gt=0, le=1)
    """Character 5-gram Jaccard similarity at which a question nearly equals an evaluation
    question (and share of a function description that makes it the evaluation item's own)."""
    seed: int = 0
    """Seed of the family split."""

    @field_validator("decontaminate_bfcl")
    @classmethod
    def _bfcl_is_there(cls, categories: list[str]) -> list[str]:
        unknown = [c for c in categories if c not in bfcl.QUESTIONS]
        if unknown:
            raise ValueError(
                f"unknown BFCL categories {unknown}; known: {', '.join(bfcl.QUESTIONS)}"
            )
        if categories:
            try:
                bfcl.data_dir()
            except UserError as exc:
                raise ValueError(str(exc)) from None
        return categories


def _reject(record: dict[str, Any], rule: str, reason: str) -> Outcome:
    return Outcome(record, [Verdict(stage="curate", rule=rule, passed=False, reason=reason)])


def _signature(trajectory: Trajectory) -> str:
    """User turns and calls, normalised; a record of one question keeps its old signature."""
    calls = [[c.name, canonical(c.arguments)] for c in trajectory.calls]
    said = [" ".join(text.lower().split()) for text in trajectory.user_turns]
    return json.dumps([said[0] if len(said) == 1 else said, calls], sort_keys=True)


def _files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for path in paths:
        out.extend(sorted(path.glob("*.jsonl")) if path.is_dir() else [path])
    return out


def _references(path: Path) -> list[EvalItem]:
    """An evaluation set's items: JSONL with `question` (and OpenAI `tools`), or openai format."""
    items = []
    for line in read_lines(path):
        if line.error:
            continue
        obj = line.obj
        ident = str(obj.get("id", f"{path.name}:{line.number}"))
        if isinstance(obj.get("question"), str):
            tools = [t.get("function", t) for t in obj.get("tools") or [] if isinstance(t, dict)]
            functions = tuple(
                (str(t.get("name", "")), str(t.get("description", ""))) for t in tools
            )
            items.append(EvalItem(ident, (obj["question"],), functions))
            continue
        try:
            trajectory = OPENAI.parse(obj)
        except FormatError:
            continue
        items.append(EvalItem(ident, tuple(trajectory.user_turns), _functions(trajectory)))
    return items


def _functions(trajectory: Trajectory) -> tuple[tuple[str, str], ...]:
    return tuple((tool.name, tool.description or "") for tool in trajectory.tools)


def load_general(paths: list[Path]) -> tuple[list[Trajectory], list[str]]:
    """General conversations (one user turn or several) as no-tool trajectories, and what could
    not be used."""
    items, problems = [], []
    for path in _files(paths):
        for line in read_lines(path):
            where = f"{path}:{line.number}"
            if line.error:
                problems.append(f"{where}: {line.error}")
                continue
            try:
                trajectory = OPENAI.parse(line.obj)
            except FormatError as exc:
                problems.append(f"{where}: {exc}")
                continue
            if trajectory.calls or trajectory.final_answer is None:
                problems.append(f"{where}: general data must be a question and an answer")
                continue
            meta = trajectory.meta.model_copy(update={"how": "general", "no_tool": True})
            items.append(
                trajectory.model_copy(update={"id": f"general:{trajectory.id}", "meta": meta})
            )
    return items, problems


def curate(
    records: list[dict[str, Any]], config: CurateConfig
) -> tuple[list[tuple[str, list[Outcome]]], dict[str, Any]]:
    trajectories = [OPENAI.parse(obj) for obj in records]
    outcomes: dict[str, Outcome] = {}
    alive: list[Trajectory] = []

    # One trajectory per task: the shortest valid one (fewest calls, then id).
    best: dict[str, Trajectory] = {}
    for t in trajectories:
        task = t.meta.task_id or t.id
        if task not in best or (len(t.calls), t.id) < (len(best[task].calls), best[task].id):
            best[task] = t
    indexes: dict[tuple[str, ...], NearDuplicates] = {}  # by the functions on offer
    exact: dict[tuple[tuple[str, ...], str], str] = {}
    contamination = Contamination(config.ngram, config.near_match)
    for path in _files(config.decontaminate):
        contamination.add(path.stem, _references(path))
    for category in config.decontaminate_bfcl:
        contamination.add(
            f"bfcl:{category}",
            (
                EvalItem(ref["id"], tuple(ref["questions"]), tuple(ref["functions"]))
                for ref in bfcl.bfcl_references([category])
            ),
        )
    hits: Counter = Counter(dict.fromkeys(contamination.sizes, 0))
    matches: list[dict[str, Any]] = []

    def contaminated(t: Trajectory) -> Outcome | None:
        """The rejection of a trajectory that matches an evaluation item, noted in `matches`."""
        # Each user turn's text first, then the functions: the module's order of precedence.
        found = None
        for question in t.user_turns:
            found = contamination.match(question)
            if found is not None:
                break
        if found is None:
            question = t.question
            found = contamination.match(question, _functions(t))
        if found is None:
            return None
        hits[found.set] += 1
        matches.append({"id": t.id, "question": question, **found.to_json()})
        return _reject(OPENAI.render(t), "curate.contaminated", found.reason())

    for t in trajectories:
        record = OPENAI.render(t)
        task = t.meta.task_id or t.id
        if best[task] is not t:
            outcomes[t.id] = _reject(
                record, "curate.extra_sample", f"{best[task].id} is the kept sample of task {task}"
            )
            continue
        menu, signature = tuple(sorted(tool.name for tool in t.tools)), _signature(t)
        if (menu, signature) in exact:
            same = exact[menu, signature]
            outcomes[t.id] = _reject(record, "curate.duplicate", f"same as {same}")
            continue
        exact[menu, signature] = t.id
        index = indexes.setdefault(menu, NearDuplicates(config.near_duplicate))
        match, score = index.add(t.id, signature)
        if match is not None:
            outcomes[t.id] = _reject(
                record, "curate.near_duplicate", f"{score:.2f} similar to {match}"
            )
            continue
        rejected = contaminated(t)
        if rejected is not None:
            outcomes[t.id] = rejected
            continue
        alive.append(t)

    sides = assign_splits(
        [(_family(t), t.meta.related, {c.name for c in t.calls}) for t in alive],
        config.test_share,
        config.seed,
        config.held_out_tools,
    )
    train = [t for t in alive if sides[_family(t)] == "train"]
    test = [t for t in alive if sides[_family(t)] == "test"]
    balanced = balance(
        {t.id: Counter(c.name for c in t.calls) for t in train},
        config.balance_target,
        config.balance_tolerance,
        config.max_drop,
    )
    dropped = set(balanced.dropped)
    for t in train:
        if t.id in dropped:
            outcomes[t.id] = _reject(
                OPENAI.render(t),
                "curate.balanced_out",
                "dropped to bring the tool distribution toward its target",
            )
    kept_train = [t for t in train if t.id not in dropped]
    loaded, problems = load_general(config.general)
    general, dropped_general = [], []
    for t in loaded:
        rejected = contaminated(t)
        if rejected is None:
            general.append(t)
        else:
            outcomes[t.id] = rejected
            dropped_general.append(t.id)
    wanted = round(config.general_ratio / (1 - config.general_ratio) * len(kept_train))
    mixed = _offer_tools(general[:wanted], kept_train, config.general_with_tools, config.seed)
    for t in kept_train + mixed:
        outcomes[t.id] = Outcome(OPENAI.render(_with_split(t, "train")))
    for t in test:
        outcomes[t.id] = Outcome(OPENAI.render(_with_split(t, "test")))

    order = [t.id for t in trajectories] + dropped_general + [t.id for t in mixed]
    train_total = len(kept_train) + len(mixed)
    report = {
        "split": {"train": train_total, "test": len(test)},
        "tools_before": balanced.before,
        "tools_after": balanced.after,
        "tools_target": {k: round(v, 4) for k, v in balanced.target.items()},
        "under_represented": balanced.under,
        "general": {
            "available": len(general),
            "wanted": wanted,
            "used": len(mixed),
            "ratio": round(len(mixed) / train_total, 4) if train_total else 0.0,
            "with_tools": sum(1 for t in mixed if t.tools),
            "problems": problems[:20],
        },
        "decontamination": {
            "ngram": config.ngram,
            "near": config.near_match,
            "hits": dict(hits),
            "sets": dict(contamination.sizes),
            "removed": len(matches),
            "matches": matches,
        },
        "families": {
            "train": len({t.meta.family for t in kept_train}),
            "test": len({t.meta.family for t in test}),
        },
    }
    return [(ident, [outcomes[ident]]) for ident in order], report


def _offer_tools(
    general: list[Trajectory], train: list[Trajectory], share: float, seed: int
) -> list[Trajectory]:
    """`general` with `share` of it (picked by `seed`) offered the functions of a training
    record that has some (also picked by `seed`); the answers stay as they are."""
    menus = [t.tools for t in train if t.tools]
    count = round(share * len(general))
    if not menus or not count:
        return general
    rng = random.Random(seed)
    chosen = set(rng.sample(range(len(general)), count))
    return [
        t.model_copy(update={"tools": rng.choice(menus)}) if k in chosen else t
        for k, t in enumerate(general)
    ]


def _family(trajectory: Trajectory) -> str:
    return trajectory.meta.family or trajectory.id


def _with_split(trajectory: Trajectory, split: str) -> Trajectory:
    return trajectory.model_copy(
        update={"meta": trajectory.meta.model_copy(update={"split": split})}
    )


CONTAMINATION_FILE = "contamination.jsonl"
"""In the curate directory: every record removed as contaminated, one a line, with the
evaluation item it matched (`id`, `question`, `set`, `match_id`, `match_text`, `how`,
`score`)."""


def curate_stage(config: CurateConfig) -> Stage:
    reports: dict[str, Any] = {}

    def process(records: list[dict[str, Any]]) -> list[tuple[str, list[Outcome]]]:
        pairs, report = curate(records, config)
        reports.update(report)
        return pairs

    def report(directory: Path) -> dict[str, Any]:
        """The curate report for stats.json; the list of matches goes to its own file."""
        out = dict(reports)
        decontamination = dict(out.get("decontamination", {}))
        write_jsonl(directory / CONTAMINATION_FILE, decontamination.pop("matches", []))
        out["decontamination"] = decontamination | {"file": CONTAMINATION_FILE}
        return out

    return Stage(
        "curate",
        process,
        config=config.model_dump(mode="json"),
        whole=True,
        report=report,
    )
