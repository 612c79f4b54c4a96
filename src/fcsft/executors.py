"""The executor a config names. It lives apart from `fcsft.stage` and `fcsft.ray_executor`
because it knows them both: the Ray executor is built on the stage contract, so the stage
module cannot name it without the two importing each other."""

from __future__ import annotations

from fcsft.errors import UserError
from fcsft.ray_executor import RayExecutor
from fcsft.stage import Executor, LocalExecutor


def executor_for(kind: str, *, address: str | None = None, workers: int | None = None) -> Executor:
    """The executor a config names: `local`, or `ray` (joining `address`, if given)."""
    if kind == "ray":
        return RayExecutor(address=address, workers=workers)
    if kind != "local":
        raise UserError(f"unknown executor {kind!r}; known: local, ray")
    return LocalExecutor()
