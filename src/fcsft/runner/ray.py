"""`executor: ray`: a per-record stage's `process` on the workers of a Ray cluster.

The driver (the process running `fcsft run`) reads the inputs, cuts them into shards of
`stage.parallel` records, and hands each shard to a worker: a Ray actor that opened the
stage for itself once (its own model client, cache handle and tools, through `Stage.worker`)
and runs up to `stage.parallel` of its records at a time. Shard results come back to the
driver, which yields them in input order to the stage runner; the runner commits them through
the ledger exactly as it commits local results, so the run directory, and resuming it after a
crash, are the same as with the local executor.

Each worker has at most two shards at a time (one running, one queued so it never idles while
the driver collects), shards go to whichever worker has room, and the driver holds at most a
few shards per worker of finished work waiting for an earlier shard: memory stays bounded.
A StopStage raised for one record (a spent budget) comes back as a marker in its place, so
the driver stops at that record, as the local executor does. Note that anything `process`
keeps in memory (a budget's running total) is per worker.

Workers read project files, caches and tools at the driver's paths: on a cluster of several
machines the run directory must be on a shared filesystem.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from fcsft.errors import require
from fcsft.runner.run import Results, run_process
from fcsft.stage import Outcome, Stage, StopStage

SHARDS_PER_WORKER = 2  # one running, one queued
_CLOSE_TIMEOUT_S = 30.0
_END = object()


@dataclass
class _Stopped:
    """In place of a record whose `process` raised StopStage: the reason it gave."""

    reason: str


class _Worker:
    """One Ray actor: opens the stage once, then runs the shards it is given."""

    def __init__(self, opener: Callable[[], AbstractAsyncContextManager[Stage]]):
        self._opener = opener
        self._exit = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()  # two shards can arrive at once; open the stage once
        self._stage: Stage | None = None
        self._gate: asyncio.Semaphore | None = None

    async def run(self, shard: list[dict[str, Any]]) -> list[list[Outcome] | _Stopped]:
        async with self._opening:
            if self._stage is None:
                self._stage = await self._exit.enter_async_context(self._opener())
                self._gate = asyncio.Semaphore(max(1, self._stage.parallel))
        stage, gate = self._stage, self._gate
        assert gate is not None

        async def one(obj: dict[str, Any]) -> list[Outcome] | _Stopped:
            async with gate:
                try:
                    return await run_process(stage, obj)
                except StopStage as stop:
                    return _Stopped(str(stop))

        return list(await asyncio.gather(*(one(obj) for obj in shard)))

    async def close(self) -> None:
        await self._exit.aclose()


@contextlib.asynccontextmanager
async def _as_is(stage: Stage) -> AsyncIterator[Stage]:
    yield stage


class RayExecutor:
    """Shards on Ray actors, results in input order. `address` joins a running cluster (`auto`,
    `ray://host:10001`); without one, an already initialised Ray is used, else a local one is
    started (and shut down after the stage). `workers` defaults to the cluster's CPU count."""

    def __init__(self, address: str | None = None, workers: int | None = None):
        self.ray = require("ray", "ray")
        self.address = address
        self.workers = workers

    async def results(self, stage: Stage, items: Iterator[tuple[str, dict[str, Any]]]) -> Results:
        ray = self.ray
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(address=self.address, include_dashboard=False, logging_level=logging.WARNING)
        opener = stage.worker or functools.partial(_as_is, stage)
        cpus = ray.cluster_resources().get("CPU", 1.0)
        count = self.workers or max(1, int(cpus))
        # A CPU each, or a share when asked for more workers than CPUs: all must be scheduled.
        actor = ray.remote(num_cpus=min(1.0, cpus / count))(_Worker)
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
                    ref = worker.run.remote([obj for _, obj in batch])
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
                for ident, result in zip(idents, results, strict=True):
                    if isinstance(result, _Stopped):
                        raise StopStage(result.reason)
                    yield ident, result
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
