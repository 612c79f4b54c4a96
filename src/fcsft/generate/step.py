"""The generate step: the teacher runs each task against the project's tools."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable

from fcsft.errors import UserError
from fcsft.generate.stage import GenerateConfig, generate_stage
from fcsft.stage import Stage, Workplace
from fcsft.step import Context, step


@step("generate", reads=("tasks",), config="generate")
def generate(ctx: Context) -> Stage:
    config = ctx.section.model_copy(update={"lessons": ctx.section.lessons + ctx.lessons()})
    live = ctx.live_lessons()
    if live is not None and config.executor != "local":
        raise UserError(
            "memory.enabled needs generate.executor: local (the lessons are learned in this "
            "process); set one of them otherwise"
        )
    ctx.executor(config.executor, address=config.ray_address, workers=config.ray_workers)
    client, name = ctx.model(config.model)
    # The tools are opened here too: the stage's key names them, whoever runs it.
    tools = asyncio.run(ctx.tools(config.model, client))
    stage = generate_stage(config, client, name, tools, live)
    if live is not None:
        stage.watch = live
        stage.report = live.report
    stage.worker = functools.partial(generate_worker, ctx.detached(), config)
    stage.close = tools.aclose
    return stage


@contextlib.asynccontextmanager
async def generate_worker(
    open_context: Callable[[Workplace], Context], config: GenerateConfig, place: Workplace
) -> AsyncIterator[Stage]:
    """The generate stage as a worker process (`executor: ray`) opens it for itself: its own
    client and tools, in `place`."""
    ctx = open_context(place)
    client, name = ctx.model(config.model)
    tools = await ctx.tools(config.model, client)
    try:
        yield generate_stage(config, client, name, tools)
    finally:
        await tools.aclose()
        await ctx.close()
