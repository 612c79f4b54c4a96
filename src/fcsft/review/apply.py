"""Feed the decisions back: the reviewed dataset and what the sample says about the rules.

`review/` is a stage directory like any other: out.jsonl is validate's out.jsonl less the
records a person rejected, rejected.jsonl holds those with the person's reason as a
`review.human` verdict, stats.json has the counts. report.json adds the two numbers the
spot check exists for, each a Wilson interval over the items reviewed so far:

- precision: of the auto-accepted items reviewed, the share a person accepted too;
- false rejection: of the auto-rejected items reviewed, the share a person would accept.

Both are plain shares of the sample. Small strata are over-represented (each gets at least
one item), so per-stratum counts are reported alongside for anyone who wants to reweight.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fcsft.intervals import Proportion, wilson
from fcsft.jsonl import read_jsonl, record_id, write_json, write_jsonl
from fcsft.records import Verdict
from fcsft.review.begin import Review, open_review, review_dir
from fcsft.review.store import Item

HUMAN_RULE = "review.human"


def human_verdict(item: Item) -> Verdict:
    return Verdict(stage="review", rule=HUMAN_RULE, passed=False, reason=item.reason)


def agreement(items: list[Item], auto: str) -> Proportion:
    """Among reviewed items the rules gave `auto`, how many a person accepted."""
    reviewed = [item for item in items if item.auto == auto and item.decision is not None]
    return wilson(sum(item.decision == "accepted" for item in reviewed), len(reviewed))


def strata_report(review: Review, items: list[Item]) -> list[dict[str, Any]]:
    rows = []
    for count in review.store.strata():
        mine = [item for item in items if item.stratum == count.stratum]
        decisions = Counter(item.decision for item in mine)
        rows.append(
            {
                **count.stratum._asdict(),
                "population": count.population,
                "sampled": count.sampled,
                "reviewed": decisions["accepted"] + decisions["rejected"],
                "human_accepted": decisions["accepted"],
                "human_rejected": decisions["rejected"],
            }
        )
    return rows


def build_report(review: Review, items: list[Item], command: str) -> dict[str, Any]:
    decided = [item for item in items if item.decision is not None]
    strata = review.store.strata()
    population = Counter()
    for count in strata:
        population[count.stratum.auto] += count.population
    return {
        "command": command,
        "method": (
            "stratified sample by (first tool, how, source, automatic verdict), "
            f"{review.info.fraction:g} of each stratum rounded half up, at least 1, seed "
            f"{review.info.seed}; shares over reviewed items with 95% Wilson intervals"
        ),
        "sample": {
            "fraction": review.info.fraction,
            "seed": review.info.seed,
            "drawn_at": review.info.drawn_at,
            "items": len(items),
            "strata": len(strata),
            "population": {"accepted": population["accepted"], "rejected": population["rejected"]},
            "inputs_changed_since_draw": review.inputs_changed,
        },
        "reviewed": {
            "total": len(decided),
            "pending": len(items) - len(decided),
            "human_accepted": sum(item.decision == "accepted" for item in decided),
            "human_rejected": sum(item.decision == "rejected" for item in decided),
        },
        "precision": agreement(items, "accepted").to_json(),
        "false_rejection": agreement(items, "rejected").to_json(),
        "human_rejections": [
            {"id": item.id, "auto": item.auto, "reason": item.reason}
            for item in decided
            if item.decision == "rejected"
        ],
        "strata": strata_report(review, items),
    }


def _kept(source: Path, removed: dict[str, Item], dropped: list[dict]) -> Iterator[dict]:
    for obj in read_jsonl(source):
        item = removed.get(record_id(obj) or "")
        if item is None:
            yield obj
        else:
            dropped.append(
                {"id": item.id, "reasons": [human_verdict(item).to_json()], "record": obj}
            )


def apply_review(run_dir: Path | str, command: str | None = None) -> dict[str, Any]:
    """Write review/out.jsonl, rejected.jsonl, stats.json and report.json; return the report.
    The caller holds the run directory's lock (`fcsft review --apply` does)."""
    return _apply(Path(run_dir), command)


def _apply(run_dir: Path, command: str | None) -> dict[str, Any]:
    review = open_review(run_dir)
    items = review.store.items()
    removed = {
        item.id: item for item in items if item.auto == "accepted" and item.decision == "rejected"
    }
    directory = review_dir(run_dir)
    dropped: list[dict] = []  # at most the sample's size
    written = write_jsonl(
        directory / "out.jsonl", _kept(run_dir / "validate" / "out.jsonl", removed, dropped)
    )
    write_jsonl(directory / "rejected.jsonl", dropped)
    report = build_report(review, items, command or f"fcsft review {run_dir} --apply")
    report["out"] = {
        "auto_accepted": written + len(dropped),
        "removed": len(dropped),
        "written": written,
    }
    write_json(directory / "report.json", report)
    write_json(
        directory / "stats.json",
        {
            "stage": "review",
            "in": written + len(dropped),
            "out": written,
            "rejected": len(dropped),
            "reasons": {HUMAN_RULE: len(dropped)} if dropped else {},
            "report": "report.json",
        },
    )
    return report


def _share(obj: dict[str, Any]) -> str:
    """A share as people read it; recomputed from k and n, so the rounded JSON is not rounded twice."""
    return str(wilson(obj["k"], obj["n"])) if obj["n"] else "n/a (none reviewed)"


def summary_line(report: dict[str, Any]) -> str:
    """The one line `fcsft review --apply` prints."""
    reviewed, out = report["reviewed"], report["out"]
    pending = f" ({reviewed['pending']} pending)" if reviewed["pending"] else ""
    stale = (
        "; validate output changed since the sample was drawn"
        if report["sample"]["inputs_changed_since_draw"]
        else ""
    )
    return (
        f"reviewed {reviewed['total']}/{report['sample']['items']}{pending}; "
        f"precision {_share(report['precision'])}; "
        f"false rejections {_share(report['false_rejection'])}; "
        f"{out['removed']} removed, {out['written']} kept{stale}"
    )
