"""The validate stage: every rule over every trajectory, each failure with its reason code."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from fcsft.formats import FormatError, get_format
from fcsft.records import Verdict
from fcsft.section import Section
from fcsft.stage import Outcome, Stage
from fcsft.validate.rules import RULES, Settings


class ValidateConfig(Section):
    rules: list[str] = Field(default_factory=lambda: sorted(RULES))
    """Reason codes of the rules to run (all format and logic rules by default)."""
    min_steps: int = Field(2, ge=0)
    """Fewest assistant steps (turns) a tool-using trajectory may have: a call and an answer."""
    max_steps: int = Field(15, ge=1)
    """Most assistant steps before a trajectory counts as a detour."""
    small_integers: int = Field(12, ge=0)
    """Whole numbers up to this size in an answer need no source (counts, ordinals)."""

    @field_validator("rules")
    @classmethod
    def _known(cls, rules: list[str]) -> list[str]:
        unknown = sorted(set(rules) - set(RULES))
        if unknown:
            raise ValueError(f"unknown rules {unknown}; known: {', '.join(sorted(RULES))}")
        return rules

    def settings(self) -> Settings:
        return Settings(
            min_steps=self.min_steps, max_steps=self.max_steps, small_integers=self.small_integers
        )


def check(obj: dict[str, Any], config: ValidateConfig, settings: Settings) -> list[Verdict]:
    """The failed verdicts for one interchange record (an empty list means it passed)."""
    try:
        trajectory = get_format("openai").parse(obj)
    except FormatError as exc:
        return [Verdict(stage="validate", rule="format.parse", passed=False, reason=str(exc))]
    failed = []
    for code in config.rules:
        problems = RULES[code](trajectory, settings)
        if problems:
            failed.append(
                Verdict(stage="validate", rule=code, passed=False, reason="; ".join(problems))
            )
    return failed


def validate_stage(config: ValidateConfig, name: str = "validate") -> Stage:
    settings = config.settings()

    def process(obj: dict[str, Any]) -> list[Outcome]:
        return [Outcome(obj, check(obj, config, settings))]

    return Stage(name, process, config=config.model_dump(mode="json"))
