"""`executor: ray`: a per-record stage's `process` on the workers of a Ray cluster.

The driver (the process running `fcsft run`) reads the inputs, cuts them into shards of
`stage.parallel` records, and hands each shard to a worker: a Ray actor that opened the
stage for itself once (its own model client and tools, through `Stage.worker`) and runs up to
`stage.parallel` of its records at a time. Shard results come back to the driver, which
yields them in input order to the stage runner; the runner commits them through the ledger
exactly as it commits local results, so the run directory, and resuming it after a crash, are
the same as with the local executor.

The driver is the only process that reads or writes the run directory, so a cluster of
several machines needs no shared filesystem for it (where SQLite's WAL mode and locks do not
work). Each record travels with the model replies it used the last time it was processed,
read from the run's response cache (`ResponseCache.replies_of`); the worker's cache is a
`CarriedReplies` that answers from those and from what the same record got so far, and the
record's outcomes come back with the keys it used and the replies it got, which the driver
stores in the cache before the runner commits the record. So a record retried or a stage run
again (a new release, a changed input) asks the model only what it did not ask before, as with
the local executor, and no worker needs the cache file. What is lost: replies of records in
flight when the driver dies (they are asked again), and replies shared between two records
that run at once on one worker, which the second one used without looking them up (it asks
again next time). A worker keeps what the stage would keep in the run directory besides the
cache (a simulated tool's observations) in a temporary folder of its own, removed when it ends.

What a worker still reads from disk, all at the driver's paths (the config it is sent is
already parsed, and paths in it resolved against the project folder): the project's own files
that opening the stage reads, since they are the stage's definition and can be large (a
`mock:` script, tool modules and docs folders for search, MCP server commands, a simulated
tool's explicit `cache:` file, which it also writes), the local model's weights from the
model cache, and the installed Python packages. On several machines the project folder (not
the run directory) must be at the same path on each, a read-only copy being enough unless a
simulated tool names its own cache file.

Each worker has at most two shards at a time (one running, one queued so it never idles while
the driver collects), shards go to whichever worker has room, and the driver holds at most a
few shards per worker of finished work waiting for an earlier shard: memory stays bounded.
A StopStage raised for one record (a spent budget) comes back as a marker in its place, so
the driver stops at that record, as the local executor does. Note that anything `process`
keeps in memory (a budget's running total) is per worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcsft.errors import require
from fcsft.models.cache import CarriedReplies, ResponseCache
from fcsft.runner.run import Results, run_process
from fcsft.stage import Outcome, Stage, StopStage, Workplace

SHARDS_PER_WORKER = 2  # one running, one queued
_CLOSE_TIMEOUT_S = 30.0
_END = object()


@dataclass
class _Stopped:
    """In place of a record whose `process` raised StopStage: the reason it gave."""

    reason: str


@dataclass
class _Done:
    """A record's result as a worker hands it back: its outcomes (or why the stage stopped at
    it), the keys of the replies it used, in order, and the replies it got from the model."""

    result: list[Outcome] | _Stopped
    used: list[str]
    made: dict[str, str]


class _Worker:
    """One Ray actor: opens the stage once, then runs the shards it is given."""

    def __init__(self, opener: Callable[[Workplace], AbstractAsyncContextManager[Stage]]):
        self._opener = opener
        self._exit = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()  # two shards can arrive at once; open the stage once
        self._stage: Stage | None = None
        self._gate: asyncio.Semaphore | None = None
        self._replies = CarriedReplies()

    async def run(self, shard: list[tuple[dict[str, Any], dict[str, str]]]) -> list[_Done]:
        """Each record of the shard, sent with the replies it used before (by key)."""
        async with self._opening:
            if self._stage is None:
                scratch = Path(tempfile.mkdtemp(prefix="fcsft-worker-"))
                self._exit.callback(shutil.rmtree, scratch, ignore_errors=True)
                place = Workplace(self._replies, scratch)
                self._stage = await self._exit.enter_async_context(self._opener(place))
                self._gate = asyncio.Semaphore(max(1, self._stage.parallel))
        stage, gate = self._stage, self._gate
        assert gate is not None

        async def one(obj: dict[str, Any], given: dict[str, str]) -> _Done:
            async with gate:
                with self._replies.carrying(given) as carried:
                    try:
                        result: list[Outcome] | _Stopped = await run_process(stage, obj)
                    except StopStage as stop:
                        result = _Stopped(str(stop))
                return _Done(result, list(carried.used), carried.made)

        return list(await asyncio.gather(*(one(obj, given) for obj, given in shard)))

    async def close(self) -> None:
        await self._exit.aclose()


def _scope(stage: Stage, ident: str) -> str:
    """Whose replies a list in the response cache names: one record of one stage."""
    return f"{stage.name}\0{ident}"


@contextlib.asynccontextmanager
async def _as_is(stage: Stage, place: Workplace) -> AsyncIterator[Stage]:
    yield stage


class RayExecutor:
    """Shards on Ray actors, results in input order. `address` joins a running cluster (`auto`,
    `ray://host:10001`); without one, an already initialised Ray is used, else a local one is
    started (and shut down after the stage). `workers` defaults to the cluster's CPU count.
    `cache` is the run's response cache, which the records' replies come from and go to; none:
    the workers' model replies are not kept."""

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        cache: ResponseCache | None = None,
    ):
        self.ray = require("ray", "ray")
        self.address = address
        self.workers = workers
        self.cache = cache

    def _given(self, stage: Stage, ident: str) -> dict[str, str]:
        """The replies the record used when it was last processed, to send with it."""
        return {} if self.cache is None else self.cache.replies_of(_scope(stage, ident))

    def _keep(self, stage: Stage, ident: str, done: _Done) -> None:
        """Store what a worker got for the record, and which replies it used."""
        if self.cache is None or not done.used:
            return
        for key, blob in done.made.items():
            self.cache.put_encoded(key, blob)
        self.cache.note_replies(_scope(stage, ident), done.used)

    async def results(self, stage: Stage, items: Iterator[tuple[str, dict[str, Any]]]) -> Results:
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
        opener = stage.worker or functools.partial(_as_is, stage)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        count = self.workers or max(1, int(cpus))
        # A CPU each, or a share when asked for more workers than CPUs: all must be scheduled.
        # Spread over the nodes: each machine's model connections and tools share the load.
        actor = ray.remote(num_cpus=min(1.0, cpus / count), scheduling_strategy="SPREAD")(_Worker)
        workers = [actor.remote(opener) for _ in range(count)]
        size = max(1, stage.parallel)
        room: asyncio.Queue[Any] = asyncio.Queue()  # a worker per free shard slot
        for worker in workers * SHARDS_PER_WORKER:
            room.put_nowait(worker)
        # Shards sent, in input order; bounded, so finished work waiting on a slow shard is too.
        sent: asyncio.Queue[Any] = asyncio.Queue(maxsize=count * SHARDS_PER_WORKER)

        async def send() -> None:
            try:
                for batch in iter(lambda: list(itertools.islice(items, size)), []):
                    worker = await room.get()
                    ref = worker.run.remote([(obj, self._given(stage, i)) for i, obj in batch])
                    future = asyncio.wrap_future(ref.future())
                    future.add_done_callback(lambda _, worker=worker: room.put_nowait(worker))
                    await sent.put(([ident for ident, _ in batch], future))
                await sent.put(_END)
            except Exception as exc:  # reading the inputs failed: raised where results are read
                await sent.put(exc)

        sender = asyncio.create_task(send())
        try:
            while (entry := await sent.get()) is not _END:
                if isinstance(entry, Exception):
                    raise entry
                idents, future = entry
                try:
                    results = await future
                except ray.exceptions.RayTaskError as exc:
                    cause = getattr(exc, "cause", None)  # the worker's own exception, unwrapped
                    raise (cause if isinstance(cause, Exception) else exc) from None
                for ident, done in zip(idents, results, strict=True):
                    self._keep(stage, ident, done)  # all of the shard's, even past a stop
                for ident, done in zip(idents, results, strict=True):
                    if isinstance(done.result, _Stopped):
                        raise StopStage(done.result.reason)
                    yield ident, done.result
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
            while not sent.empty():  # shards nobody will read: let them go quietly
                entry = sent.get_nowait()
                if isinstance(entry, tuple):
                    entry[1].cancel()
            closing = [asyncio.wrap_future(w.close.remote().future()) for w in workers]
            await asyncio.wait(closing, timeout=_CLOSE_TIMEOUT_S)
            for worker in workers:
                ray.kill(worker)
            if started_here:
                ray.shutdown()
