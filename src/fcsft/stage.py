"""The contract every step implements: a stage is one function over a stream of records.

A stage reads records and hands back, for each input, its `Outcome`s: a record that passed,
or one that did not with the verdicts that say why. It never knows where it runs or how its
results are stored; `fcsft.runner` runs it, commits its outcomes and writes its directory.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fcsft.models.cache import CarriedReplies
from fcsft.records import Verdict


@dataclass
class Outcome:
    """What processing one input produced: a record (or None) and the verdicts about it."""

    record: dict[str, Any] | None
    verdicts: list[Verdict] = field(default_factory=list)
    counts: dict[str, float] = field(default_factory=dict)  # e.g. tokens, cost: summed in stats
    retry: bool = False
    """Failed for a reason outside the record (the model could not answer): the next run
    processes the input again. A rejection the record earned itself is final."""
    notes: dict[str, str] = field(default_factory=dict)
    """Written into the input's ledger line (e.g. the version of the lessons a trajectory was
    generated with), so a resumed run knows how committed work was made."""

    @property
    def passed(self) -> bool:
        return self.record is not None and all(v.passed for v in self.verdicts)


Process = Callable[[Any], "list[Outcome] | Awaitable[list[Outcome]]"]


class Watch(Protocol):
    """Told of every input a stage commits, in commit order, each exactly once per process:
    first what earlier attempts committed (replayed from the stage's files when a run resumes),
    then each new commit as it lands. The stage's later inputs may depend on what it learns
    (lessons from validation), so the runner awaits it before committing the next input."""

    async def committed(self, ident: str, outcomes: list[Outcome]) -> None: ...


@dataclass(frozen=True)
class Workplace:
    """What a stage opened in a worker process (`Stage.worker`) uses in place of the run
    directory, which only the process running the stage reads and writes."""

    replies: CarriedReplies
    """The response cache its model clients use: each input's replies come with the input,
    and those it used or got are handed back with its outcomes."""
    scratch: Path
    """A folder of the worker's own, removed when it ends, for what the stage would otherwise
    keep in the run directory (a simulated tool's observations)."""


@dataclass
class Stage:
    """A named step. `config` is anything JSON-serialisable that changes its output.

    A per-record stage's `process` takes one record and returns its outcomes. A `whole` stage
    (dedup, balance, combination) needs every record at once: `process` takes the list and
    returns `(id, outcomes)` pairs; it must be deterministic, because a resumed run computes
    it again and commits only the ids the interrupted run had not. A `files` stage is a whole
    stage whose input is no JSONL of records (seed sheets, chat logs, the data a model is
    trained on): `process` takes the input paths themselves.
    """

    name: str
    process: Process
    config: Any = None
    parallel: int = 1
    """Inputs of a per-record stage processed at once (and, with `executor: ray`, a worker's
    share of them). A stage that asks a model takes it from the model's requests in flight
    (`fcsft.models.client.records_at_once`), the one setting for how hard a model is driven."""
    whole: bool = False
    files: bool = False
    """`process` takes the input paths (a whole stage): it runs in a thread of its own, so it
    may block for long or run stages itself."""
    report: Callable[[Path], dict[str, Any]] | None = None
    """Called on the finished stage directory; what it returns goes into stats.json."""
    worker: Callable[[Workplace], AbstractAsyncContextManager[Stage]] | None = None
    """How another process gets this stage for itself: a picklable callable (a module-level
    function, or a functools.partial of one) whose context opens what `process` needs (a model
    client, tools) in the `Workplace` it is given, never in the run directory, and yields an
    equivalent Stage. None: executors that run elsewhere ship this Stage as it is, which works
    when `process` holds nothing that cannot be pickled."""
    close: Callable[[], Awaitable[None]] | None = None
    """Awaited in the stage's event loop once it ends, however it ends: releases what `process`
    opened on that loop (a model client's connections), which cannot be closed after it."""
    watch: Watch | None = None
    """Told of each committed input (see `Watch`); per-record stages on the local executor."""
    set_aside: bool = False
    """For input a user brings: a line that is no record (not UTF-8, not a JSON object, no id,
    an id seen before) is rejected under `input.malformed`, named by file and line, and the
    rest is processed. Otherwise such a line stops the stage before any work."""
    stopping: threading.Event | None = None
    """Set when the run is interrupted (Ctrl-C) while `process` runs in a thread. A thread
    cannot be stopped from outside, and the interpreter waits for it before it exits, so a
    `process` that runs for long (training) checks this and stops at a point it can resume
    from; one that does not is waited for."""

    def __post_init__(self) -> None:
        if self.files and not self.whole:
            raise ValueError(f"stage {self.name}: a files stage is a whole stage (whole=True)")


class StopStage(Exception):
    """Raised by `process` to end a run early and cleanly (a spent budget, say): what finished
    before it is committed, the stage is left unfinished, and the next run resumes it."""


@dataclass
class Progress:
    done: int
    total: int
    counts: Counter
    done_now: int = 0  # committed by this attempt (a resumed run starts with some done)
    elapsed: float = 0.0  # seconds since this attempt started

    @property
    def rate(self) -> float:
        return self.done_now / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        return (self.total - self.done) / self.rate if self.rate > 0 else None


OnProgress = Callable[[Progress], None]


class RunStage(Protocol):
    """The runner's entry point, for a step that runs stages of its own (evaluation asks each
    model through a predictions stage): run `stage` over `inputs` in `run_dir`, return its
    stats. A step gets it from its caller, since steps sit below the runner."""

    def __call__(
        self,
        stage: Stage,
        run_dir: Path,
        inputs: list[Path],
        on_progress: OnProgress | None = None,
    ) -> dict[str, Any]: ...
