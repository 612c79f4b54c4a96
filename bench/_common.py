"""What the benches share: the fake server in a process of its own, a fixed-size driver, and
whether this machine can be asked for bf16 at all."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Sequence
from typing import Any


def start_fake_server(latency_ms: float, *options: str) -> subprocess.Popen[str]:
    """fcsft.testing.fake_openai in its own process (so it shares no event loop or GIL with the
    clients measured); `options` are its command-line flags, e.g. "--rate-429", "0.02"."""
    command = [
        sys.executable,
        "-m",
        "fcsft.testing.fake_openai",
        "--latency-ms",
        str(latency_ms),
        *options,
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def read_base_url(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    line = server.stdout.readline().strip()
    if not line.startswith("http"):
        raise SystemExit(f"the fake server did not start (it printed {line!r})")
    return line


def stop_server(server: subprocess.Popen[str] | None) -> None:
    if server is not None:
        server.terminate()
        server.wait(timeout=10)


def server_stats(base_url: str) -> dict[str, Any] | None:
    """The fake server's counters so far; None for a server that is not ours."""
    url = base_url.rsplit("/v1", 1)[0] + "/_fake/stats"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.load(answer)
    except OSError:
        return None


async def drive(items: Sequence[Any], concurrency: int, call: Callable[[Any], Awaitable]) -> float:
    """Seconds for `concurrency` workers to make `call` on every item."""
    queue = iter(items)

    async def worker() -> None:
        for item in queue:
            await call(item)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


def bf16_refused() -> str | None:
    """Why `precision: bf16` is refused here (a CPU that would emulate it), or None where it
    runs: a bf16-versus-fp32 figure is then not measured, and the bench says why on stderr."""
    from fcsft.errors import UserError
    from fcsft.models.precision import choose

    try:
        choose("bf16")
    except UserError as refused:
        print(f"bf16 not measured: {refused}", file=sys.stderr)
        return str(refused)
    return None
