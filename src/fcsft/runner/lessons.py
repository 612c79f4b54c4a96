"""Memory inside the run: validation outcomes become teacher lessons while generate runs.

Each trajectory generate commits is checked by the validate rules (the project's `validate:`
section, without the judge) and becomes one message of a `Session`; after each commit the
`ExtractionCoordinator` extracts lessons when at least `MIN_NEW_MESSAGES` new messages
arrived, and its extractor persists them with the `MemoryWriter` in the stage's `memory/`
folder before the coordinator moves its cursor. The run awaits each commit's extraction
before the next commit, so extractions never overlap.

Which lessons a task gets is fixed by the input order, not by timing: task N (its place in
the stage's input) waits until the first N + 1 - window inputs are committed and checked, and
takes the lessons as they stood then. Its version (a hash of the lessons) goes into its ledger
line. A resumed run replays the committed inputs in order through the same coordinator,
which rebuilds the memory folder exactly, so the tasks still to do get what an uninterrupted
run would have given them; a replayed version that disagrees with the ledger is reported.

The wait for those commits is reached when every input ahead of a task is either replayed or
processed in this run (the runner commits in input order). Should that ever not hold (a
replay shorter than what the runner skips), no commit would come and the task would wait
forever; so a task that sees no commit at all for `stall_s` while it waits stops the stage
(`StopStage`): what is committed stays, and the next run resumes.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fcsft.intervals import wilson
from fcsft.jsonl import read_lines, record_id
from fcsft.memory import ExtractionCoordinator, MemoryWriter, Session
from fcsft.memory.config import MemoryConfig
from fcsft.memory.extract import extract_with_model, lessons_from_rejections
from fcsft.stage import Outcome, StopStage
from fcsft.validate.stage import ValidateConfig, check

log = logging.getLogger(__name__)


def lessons_version(lessons: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps(list(lessons)).encode()).hexdigest()[:16]


NONE = lessons_version([])
STALL_S = 3 * 3600.0  # longer than any trajectory takes: only a run that cannot go on waits it


class RunLessons:
    """The `fcsft.step.LiveLessons` of one stage: watches its commits, serves its tasks."""

    def __init__(
        self,
        settings: MemoryConfig,
        validate: ValidateConfig,
        root: Path,
        inputs: list[Path],
        model: tuple[Any, str] | None = None,
        stall_s: float = STALL_S,
    ):
        self.settings = settings
        self.stall_s = stall_s
        self.validate = validate
        self.rules = validate.settings()
        self.root = root
        self.inputs = inputs
        self.model = model
        self.key = {
            "memory": settings.model_dump(mode="json"),
            "validate": validate.model_dump(mode="json", exclude={"judge"}),
            "extractor": model[1] if model else "rules",
        }
        self.session = Session()
        self.coordinator = ExtractionCoordinator(self._extract)
        self.committed_count = 0
        # (commits, version, lessons): the lessons in force from that many commits on
        self.history: list[tuple[int, str, list[str]]] = [(0, NONE, [])]
        self.checked: list[tuple[bool, bool]] = []  # (generated with lessons, rejected)
        self.order: dict[str, int] | None = None
        self._settled: asyncio.Condition | None = None

    def _begin(self) -> dict[str, int]:
        """On first use in this process: the input order, and an empty memory folder (the
        replay of what is committed rebuilds it)."""
        if self.order is None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.order = {}
            for path in self.inputs:
                for line in read_lines(path):
                    ident = None if line.error else record_id(line.obj)
                    if ident is not None:
                        self.order.setdefault(ident, len(self.order))
        return self.order

    @property
    def settled(self) -> asyncio.Condition:
        if self._settled is None:
            self._settled = asyncio.Condition()
        return self._settled

    def _needed(self, ident: str) -> int:
        return max(0, self._begin().get(ident, 0) + 1 - self.settings.window)

    def _at(self, commits: int) -> tuple[str, list[str]]:
        index = bisect.bisect_right([h[0] for h in self.history], commits) - 1
        _, version, lessons = self.history[index]
        return version, lessons

    async def for_task(self, ident: str) -> tuple[str, list[str]]:
        needed = self._needed(ident)
        async with self.settled:
            while self.committed_count < needed:
                seen = self.committed_count
                try:
                    await asyncio.wait_for(self.settled.wait(), self.stall_s)
                except TimeoutError:
                    if self.committed_count == seen:
                        raise StopStage(
                            f"{ident} waits for the lessons of the first {needed} inputs, but "
                            f"{seen} are committed and none came in {self.stall_s:g} s"
                        ) from None
        return self._at(needed)

    async def committed(self, ident: str, outcomes: list[Outcome]) -> None:
        expected, _ = self._at(self._needed(ident))
        for outcome in outcomes:
            version = outcome.notes.get("lessons")
            if version is None or outcome.record is None:
                continue  # no trajectory: generate's own failure, nothing to validate
            if version != expected:
                log.warning(
                    "%s was generated with lessons %s, but the lessons replayed for it are %s: "
                    "the extraction is not deterministic, so resumed tasks may differ",
                    ident,
                    version,
                    expected,
                )
            if any(v.stage == "generate" for v in outcome.verdicts):
                continue
            failed = check(outcome.record, self.validate, self.rules)
            self.checked.append((version != NONE, bool(failed)))
            self.session.messages.append(_message(ident, failed))
        runs = self.coordinator.runs
        await self.coordinator.maybe_extract(self.session)
        lessons = self._lessons() if self.coordinator.runs != runs else self.history[-1][2]
        self.committed_count += 1
        if lessons != self.history[-1][2]:
            self.history.append((self.committed_count, lessons_version(lessons), lessons))
        async with self.settled:
            self.settled.notify_all()

    async def _extract(self, batch: Sequence[dict[str, Any]]) -> None:
        """Lessons from `batch`, persisted before it returns (the coordinator's cursor moves
        only then)."""
        if self.model is not None:
            memories = await extract_with_model(*self.model, batch)
        else:
            rejections = [m["reasons"] for m in batch if m["reasons"]]
            memories = lessons_from_rejections(rejections, len(batch), self.settings.top)
        MemoryWriter(self.root).add(memories)

    def _lessons(self) -> list[str]:
        writer = MemoryWriter(self.root)
        return [memory.text for topic in writer.topics() for memory in writer.read(topic)]

    def report(self, directory: Path) -> dict[str, Any]:
        before = [rejected for learned, rejected in self.checked if not learned]
        after = [rejected for learned, rejected in self.checked if learned]
        return {
            "memory": {
                "folder": str(self.root),
                "extractions": self.coordinator.runs,
                "failed_extractions": self.coordinator.failures,
                "lessons": self._lessons(),
                "first_lessons_after": self.history[1][0] if len(self.history) > 1 else None,
                "rejection_rate_before_lessons": wilson(sum(before), len(before)).to_json(),
                "rejection_rate_after_lessons": wilson(sum(after), len(after)).to_json(),
            }
        }


def _message(ident: str, failed: list[Any]) -> dict[str, Any]:
    """One validation outcome as a session message (`reasons` holds the failed verdicts)."""
    if not failed:
        content = f"trajectory for {ident} passed validation"
    else:
        content = f"trajectory for {ident} rejected: " + "; ".join(
            f"{v.rule}: {v.reason}" for v in failed
        )
    return {"role": "validation", "content": content, "reasons": [v.to_json() for v in failed]}


def memory_lines(report: dict[str, Any]) -> list[str]:
    """The run summary's lines for a stage report with `memory`."""
    memory = report.get("memory")
    if not memory:
        return []
    lines = []
    for label, key in (("before", "before_lessons"), ("after", "after_lessons")):
        rate = memory[f"rejection_rate_{key}"]
        low, high = rate["ci95"]
        lines.append(
            f"rejected {label} the first lessons: {rate['k']}/{rate['n']} "
            f"({rate['value']:.1%}, 95% CI {low:.1%}-{high:.1%})"
        )
    lines.append(
        f"{len(memory['lessons'])} lessons from {memory['extractions']} extractions "
        f"in {memory['folder']}"
    )
    return lines
