"""Running a stage: its directory, ledger, marker, and resuming it.

A stage directory holds

    out.jsonl        records that passed, in input order
    rejected.jsonl   {"id", "reasons": [Verdict...], "record"} for each one that did not
    stats.json       counts in/out, per-reason counts, summed counters (tokens, cost), wall time
    _ledger.jsonl    one line per finished input: its id and how many lines it wrote where
    _done.json       written last: the hash of the stage's name, config and input, and how
                     many inputs failed on the model (`retry`), if any

Why a ledger: outputs of one input are appended first, its ledger line after. After a crash the
ledger says exactly how many lines of each file are committed; anything past that is cut off
and the input is processed again. Inputs are committed in input order even when processed
concurrently, so an interrupted and resumed run writes the same bytes as an uninterrupted one.

An outcome marked `retry` failed for a reason outside the record (the model could not answer).
Its input is committed like any other, but the stage is not finished for good: the next run
takes such inputs out of the three files (see `fcsft.runner._rewrite`) and processes them again,
after the rest, while everything else committed stays as it is.

Where `process` runs is the executor's business, not the stage's: `LocalExecutor` runs it on
this process's event loop, `fcsft.runner.ray.RayExecutor` on the workers of a Ray cluster.
Either hands back outcomes in input order and this module commits them, so the run directory
is the same whichever ran it.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import shutil
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from fcsft._version import __version__
from fcsft.errors import UserError
from fcsft.files import file_hash
from fcsft.jsonl import dumps, read_json_object, read_lines, record_id, write_json
from fcsft.records import Verdict
from fcsft.runner._rewrite import drop_inputs, finish_rewrite
from fcsft.runner.lock import run_dir_lock
from fcsft.stage import OnProgress, Outcome, Progress, Stage, StopStage

_LEDGER = "_ledger.jsonl"
_OUTPUTS = ("out.jsonl", "rejected.jsonl")  # the ledger's "out" and "rejected" count their lines


def stage_key(stage: Stage, input_hash: str) -> str:
    config = json.dumps(_jsonable(stage.config), sort_keys=True, ensure_ascii=False)
    # The release is part of the key: a new one may write different output, so it runs again.
    blob = f"{stage.name}\0{__version__}\0{config}\0{input_hash}"
    return hashlib.sha256(blob.encode()).hexdigest()


def _jsonable(config: Any) -> Any:
    dump = getattr(config, "model_dump", None)
    return dump(mode="json") if dump else config


Results = AsyncIterator[tuple[str, list[Outcome]]]


class Executor(Protocol):
    """Runs a per-record stage's `process` over `(id, record)` pairs and yields each id with its
    outcomes in the order the pairs came. A `process` that raises StopStage for an input ends
    the iteration there, by raising it, after every earlier input was yielded."""

    def results(self, stage: Stage, items: Iterator[tuple[str, dict[str, Any]]]) -> Results: ...


class LocalExecutor:
    """This process: up to `stage.parallel` inputs in flight on the running event loop."""

    async def results(self, stage: Stage, items: Iterator[tuple[str, dict[str, Any]]]) -> Results:
        gate = asyncio.Semaphore(max(1, stage.parallel))
        window = max(1, stage.parallel) * 8  # finished work waiting for its turn

        async def guarded(obj: dict[str, Any]) -> list[Outcome]:
            async with gate:
                return await run_process(stage, obj)

        pending: deque[tuple[str, asyncio.Task[list[Outcome]]]] = deque()
        try:
            for ident, obj in items:
                pending.append((ident, asyncio.create_task(guarded(obj))))
                while pending and (len(pending) >= window or pending[0][1].done()):
                    head, task = pending.popleft()
                    yield head, await task
            while pending:
                head, task = pending.popleft()
                yield head, await task
        finally:
            for _, task in pending:
                task.cancel()
            await asyncio.gather(*(task for _, task in pending), return_exceptions=True)


def run_stage(
    stage: Stage,
    run_dir: Path | str,
    inputs: list[Path],
    on_progress: OnProgress | None = None,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run (or resume, or skip) a stage over its input files; returns its stats.

    `executor` runs a per-record stage's `process` (default: `LocalExecutor`); a `whole` stage
    always runs here, since it needs every record at once."""
    with run_dir_lock(run_dir):
        directory = Path(run_dir) / stage.name
        key = stage_key(stage, file_hash(inputs))
        done = read_json_object(directory / "_done.json")
        if done is not None and done.get("key") == key and not done.get("retry"):
            stats = read_json_object(directory / "stats.json")
            if stats is not None:
                if stage.close is not None:  # what building the stage opened
                    asyncio.run(stage.close())
                return stats
            # stats.json is missing or unreadable: recomputed below from the ledger
        summary = _recover(directory, key)
        work = _run(
            stage, directory, key, inputs, summary, on_progress, executor or LocalExecutor()
        )
        return asyncio.run(_closing(stage, work))


async def _closing(stage: Stage, work: Awaitable[dict[str, Any]]) -> dict[str, Any]:
    """`work`, then the stage's `close`, in the same event loop, however the work ends."""
    try:
        return await work
    finally:
        if stage.close is not None:
            await stage.close()


def _recover(directory: Path, key: str) -> Summary:
    """What an earlier attempt with the same key committed; starts afresh otherwise."""
    state = directory / "_state.json"
    if state.exists():
        recorded = read_json_object(state)
        if recorded is None or not isinstance(recorded.get("key"), str):
            raise UserError(
                f"{state} is unreadable, so whose output {directory} holds is unknown; "
                f"delete {directory} to run the stage afresh"
            )
        if recorded["key"] != key:
            shutil.rmtree(directory)  # config or input changed: earlier output is not this stage's
    directory.mkdir(parents=True, exist_ok=True)
    summary = Summary()
    if not state.exists():
        for name in ("out.jsonl", "rejected.jsonl", "_ledger.jsonl", "_done.json", "stats.json"):
            (directory / name).unlink(missing_ok=True)
        write_json(state, {"key": key})
        return summary
    (directory / "_done.json").unlink(missing_ok=True)
    finish_rewrite(directory, (*_OUTPUTS, _LEDGER))
    summary = _committed(directory)
    if summary.retry:
        drop_inputs(directory, _LEDGER, _OUTPUTS, summary.retry)
        summary = _committed(directory)
    return summary


def _committed(directory: Path) -> Summary:
    """What the ledger says is committed, with anything past it cut off the files."""
    summary = Summary()
    _truncate_to(directory / _LEDGER, None, summary.add)
    _truncate_to(directory / "out.jsonl", summary.out)
    _truncate_to(directory / "rejected.jsonl", summary.rejected)
    return summary


def _truncate_to(
    path: Path, keep: int | None, each: Callable[[dict[str, Any]], None] | None = None
) -> None:
    """Cut a JSONL file after `keep` complete lines (all complete ones when None). With `each`,
    a line it refuses (ValueError) ends the file like a torn one: the work it recorded is
    done again."""
    path.touch()
    kept = size = 0
    with path.open("rb") as handle:
        for raw in handle:
            if (keep is not None and kept >= keep) or not raw.endswith(b"\n"):
                break
            try:
                obj = json.loads(raw)
                if each:
                    each(obj)
            except ValueError:  # not JSON, or not the shape `each` reads
                break
            kept += 1
            size += len(raw)
    if keep is not None and kept < keep:
        raise UserError(
            f"{path}: holds {kept} lines but its ledger says {keep}; "
            f"delete {path.parent} to run the stage afresh"
        )
    with path.open("r+b") as handle:
        handle.truncate(size)


MALFORMED = "input.malformed"


def _records(
    paths: list[Path], set_aside: bool
) -> Iterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(id, record, None) for every input record; a line that is no record is a UserError, or
    with `set_aside` (`FILE:LINE`, None, why), the same on every pass over the same files."""
    seen: set[str] = set()
    for path in paths:
        for line in read_lines(path):
            where = f"{path}:{line.number}"
            ident = None if line.error else record_id(line.obj)
            if line.error:
                problem = line.error
            elif ident is None:
                problem = "record has no string 'id' (or 'meta.id')"
            elif ident in seen:
                problem = f"duplicate id {ident!r}; ids must be unique"
            else:
                seen.add(ident)
                yield ident, line.obj, None
                continue
            if not set_aside:
                raise UserError(f"{where}: {problem}")
            yield f"{path.name}:{line.number}", None, f"{where}: {problem}"


def _inputs(
    paths: list[Path], skip: set[str], set_aside: bool
) -> Iterator[tuple[str, dict[str, Any]]]:
    for ident, obj, problem in _records(paths, set_aside):
        if problem is None and ident not in skip:
            yield ident, obj  # type: ignore[misc]


async def run_process(stage: Stage, obj: Any) -> Any:
    """`stage.process` on one input (or, for a whole stage, on all of them), awaited."""
    if inspect.iscoroutinefunction(stage.process):
        return await stage.process(obj)
    if stage.parallel > 1 or stage.files:
        try:
            return await asyncio.to_thread(stage.process, obj)
        except asyncio.CancelledError:  # interrupted: the thread runs on until it looks
            if stage.stopping is not None:
                stage.stopping.set()
            raise
    return stage.process(obj)  # type: ignore[return-value]


async def _run(
    stage: Stage,
    directory: Path,
    key: str,
    inputs: list[Path],
    summary: Summary,
    on_progress: OnProgress | None,
    executor: Executor,
) -> dict[str, Any]:
    attempt = 1 + max(summary.wall, default=0)
    started = time.monotonic()
    # One pass before any work: counts the inputs, finds the lines to set aside, and stops a
    # stage whose input has a bad line before it spends anything.
    total, malformed = 0, []
    for ident, _, problem in () if stage.files else _records(inputs, stage.set_aside):
        total += 1
        if problem is not None:
            malformed.append((ident, problem))

    with (
        (directory / "out.jsonl").open("a", encoding="utf-8") as out,
        (directory / "rejected.jsonl").open("a", encoding="utf-8") as rejected,
        (directory / "_ledger.jsonl").open("a", encoding="utf-8") as book,
    ):
        files = (out, rejected, book)
        done = set(summary.done)
        resumed = len(done)

        def commit(ident: str, outcomes: list[Outcome]) -> None:
            summary.add(_commit(files, ident, outcomes, attempt, time.monotonic() - started))
            if on_progress and not stage.files:  # a files stage's total is not known ahead
                on_progress(
                    Progress(
                        len(summary.done),
                        total,
                        summary.counts(),
                        len(summary.done) - resumed,
                        time.monotonic() - started,
                    )
                )

        watch = stage.watch
        if watch is not None:
            for ident, outcomes in _replay(directory):
                await watch.committed(ident, outcomes)

        async def commit_watched(ident: str, outcomes: list[Outcome]) -> None:
            commit(ident, outcomes)
            if watch is not None:
                await watch.committed(ident, _in_file_order(outcomes))

        for ident, problem in malformed:  # first, so that a resumed run commits the same bytes
            if ident not in done:
                verdict = Verdict(stage=stage.name, rule=MALFORMED, passed=False, reason=problem)
                await commit_watched(ident, [Outcome(None, [verdict])])
        try:
            if stage.whole:
                batch = (
                    list(inputs)
                    if stage.files
                    else [obj for _, obj in _inputs(inputs, set(), stage.set_aside)]
                )
                for ident, outcomes in await run_process(stage, batch):
                    if ident not in done:
                        await commit_watched(ident, outcomes)
            else:
                async with aclosing(
                    executor.results(stage, _inputs(inputs, done, stage.set_aside))
                ) as results:
                    async for ident, outcomes in results:
                        await commit_watched(ident, outcomes)
        except StopStage as stop:
            stats = summary.stats(stage.name) | {"stopped": str(stop)}
            write_json(directory / "stats.json", stats)
            return stats

    stats = summary.stats(stage.name)
    if stage.report:
        stats["report"] = stage.report(directory)
    write_json(directory / "stats.json", stats)
    marker = {"key": key, "stats": "stats.json"}
    if summary.retry:
        marker["retry"] = len(summary.retry)  # done for now: the next run tries these again
    write_json(directory / "_done.json", marker)
    return stats


def _commit(
    files: tuple[TextIO, TextIO, TextIO],
    ident: str,
    outcomes: list[Outcome],
    attempt: int,
    elapsed: float,
) -> dict[str, Any]:
    out, rejected, book = files
    reasons: Counter = Counter()
    counters: Counter = Counter()
    n_out = n_rejected = 0
    for outcome in outcomes:
        counters.update(outcome.counts)
        if outcome.passed:
            out.write(dumps(outcome.record) + "\n")
            n_out += 1
            continue
        failed = [v for v in outcome.verdicts if not v.passed]
        if not failed or not all(v.reason.strip() for v in failed):
            # A bug in the stage, not the input: a rejection nobody can act on is not written.
            raise AssertionError(f"stage rejected {ident} without saying why: {failed}")
        reasons.update(v.rule for v in failed)
        rejected.write(
            dumps({"id": ident, "reasons": [v.to_json() for v in failed], "record": outcome.record})
            + "\n"
        )
        n_rejected += 1
    out.flush()
    rejected.flush()
    entry = {
        "id": ident,
        "out": n_out,
        "rejected": n_rejected,
        "reasons": dict(reasons),
        "counts": dict(counters),
        "attempt": attempt,
        "elapsed": round(elapsed, 4),
    }
    if any(outcome.retry for outcome in outcomes):
        entry["retry"] = True
    notes = {k: v for outcome in outcomes for k, v in outcome.notes.items()}
    if notes:
        entry["notes"] = notes
    book.write(dumps(entry) + "\n")
    book.flush()
    return entry


@dataclass
class Summary:
    """What the ledger says so far, folded line by line so memory stays flat."""

    done: set[str] = field(default_factory=set)
    out: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    counters: Counter = field(default_factory=Counter)
    wall: dict[int, float] = field(default_factory=dict)
    retry: set[str] = field(default_factory=set)  # inputs to process again next time

    def add(self, entry: dict[str, Any]) -> None:
        """Fold in one ledger line; ValueError, before any change, if it is not one."""
        if not _ledger_entry(entry):
            raise ValueError(f"not a ledger entry: {entry!r:.80}")
        self.done.add(entry["id"])
        self.out += entry["out"]
        self.rejected += entry["rejected"]
        self.reasons.update(entry["reasons"])
        self.counters.update(entry["counts"])
        attempt = entry["attempt"]
        self.wall[attempt] = max(self.wall.get(attempt, 0.0), entry["elapsed"])
        if entry.get("retry"):
            self.retry.add(entry["id"])

    def counts(self) -> Counter:
        return Counter(
            {"in": len(self.done), "out": self.out, "rejected": self.rejected, **self.counters}
        )

    def stats(self, name: str) -> dict[str, Any]:
        return {
            "stage": name,
            "in": len(self.done),
            "out": self.out,
            "rejected": self.rejected,
            "reasons": dict(sorted(self.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
            "counts": dict(sorted(self.counters.items())),
            "wall_s": round(sum(self.wall.values()), 3),
            "attempts": len(self.wall),
        } | ({"retry": len(self.retry)} if self.retry else {})


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _ledger_entry(entry: Any) -> bool:
    """Whether a ledger line has the shape `_commit` writes."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and _count(entry.get("out"))
        and _count(entry.get("rejected"))
        and isinstance(entry.get("reasons"), dict)
        and all(isinstance(k, str) and _count(v) for k, v in entry["reasons"].items())
        and isinstance(entry.get("counts"), dict)
        and all(isinstance(k, str) and _number(v) for k, v in entry["counts"].items())
        and _count(entry.get("attempt"))
        and _number(entry.get("elapsed"))
        and isinstance(entry.get("retry", False), bool)
        and isinstance(entry.get("notes", {}), dict)
        and all(isinstance(v, str) for v in entry.get("notes", {}).values())
    )


def _in_file_order(outcomes: list[Outcome]) -> list[Outcome]:
    """An input's outcomes as its committed lines read back: the passed ones, then the rest."""
    return [o for o in outcomes if o.passed] + [o for o in outcomes if not o.passed]


def _replay(directory: Path) -> Iterator[tuple[str, list[Outcome]]]:
    """What the ledger says is committed, input by input, as the outcomes that wrote it (the
    files agree with the ledger after `_recover`)."""
    with (
        (directory / _LEDGER).open(encoding="utf-8") as book,
        (directory / "out.jsonl").open(encoding="utf-8") as out,
        (directory / "rejected.jsonl").open(encoding="utf-8") as rejected,
    ):
        for raw in book:
            entry = json.loads(raw)
            notes = entry.get("notes", {})
            outcomes = [
                Outcome(json.loads(out.readline()), notes=notes) for _ in range(entry["out"])
            ]
            for _ in range(entry["rejected"]):
                row = json.loads(rejected.readline())
                verdicts = [Verdict.from_json(v) for v in row["reasons"]]
                outcomes.append(Outcome(row["record"], verdicts, notes=notes))
            yield entry["id"], outcomes
