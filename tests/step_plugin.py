"""A step from outside fcsft, registered through the `fcsft.steps` entry point group: the one
file and one decorator that adding a step takes."""

from fcsft.stage import Outcome, Stage
from fcsft.step import Context, step


@step("shout", reads=("seeds",))
def shout(ctx: Context) -> Stage:
    """Every seed's question in capitals."""

    def process(seed: dict) -> list[Outcome]:
        return [Outcome(seed | {"question": seed["question"].upper()})]

    return Stage("shout", process)
