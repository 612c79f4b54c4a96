"""The executor a config names. It lives apart from `fcsft.runner.run` and `fcsft.runner.ray`
because it knows them both: the Ray executor is built on the stage runner, so the runner
module cannot name it without the two importing each other."""

from __future__ import annotations

from fcsft.errors import UserError
from fcsft.models.cache import ResponseCache
from fcsft.runner.ray import RayExecutor
from fcsft.runner.run import Executor, LocalExecutor


def executor_for(
    kind: str,
    *,
    address: str | None = None,
    workers: int | None = None,
    cache: ResponseCache | None = None,
) -> Executor:
    """The executor a config names: `local`, or `ray` (joining `address`, if given; its workers'
    replies are kept in the run's `cache`)."""
    if kind == "ray":
        return RayExecutor(address=address, workers=workers, cache=cache)
    if kind != "local":
        raise UserError(f"unknown executor {kind!r}; known: local, ray")
    return LocalExecutor()
