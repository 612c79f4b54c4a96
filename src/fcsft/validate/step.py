"""The validate step: the rules over every generated trajectory."""

from __future__ import annotations

from fcsft.stage import Stage
from fcsft.step import Context, step
from fcsft.validate.stage import validate_stage


@step("validate", reads=("generate",), config="validate")
def validate(ctx: Context) -> Stage:
    config = ctx.section
    judge, judge_name = ctx.model(config.judge.model) if config.judge else (None, "")
    return validate_stage(config, judge=judge, judge_name=judge_name)
