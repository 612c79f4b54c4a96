"""The review: a person checks a sample of validate's decisions (`fcsft review`), and curate
reads what `fcsft review --apply` kept. A person runs it, never `fcsft run`."""

from __future__ import annotations

from fcsft.stage import Stage
from fcsft.step import Context, step


@step("review", reads=("validate",), manual="fcsft review {run_dir} --apply")
def review(ctx: Context) -> Stage:
    raise AssertionError("the review is run by a person: fcsft review RUN_DIR --apply")
