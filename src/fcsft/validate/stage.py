"""The validate stage: every rule over every trajectory, each failure with its reason code."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from fcsft.agent import MAX_STEPS
from fcsft.formats import FormatError, get_format
from fcsft.models.client import records_at_once
from fcsft.records import Verdict
from fcsft.section import Section
from fcsft.stage import Outcome, Stage
from fcsft.validate.rules import RULES, Settings

JUDGE_PROMPT = """\
You check one tool-using conversation against a rubric.

Rubric:
{rubric}

Conversation:
{conversation}

Reply with JSON only: {{"pass": true or false, "reason": "one sentence"}}"""


class JudgeConfig(Section):
    model: str = "judge"
    """Role (a key of `models`) of the judging model."""
    rubric: str = (
        "The final answer answers the question, follows from the tool results, and "
        "no call was unnecessary."
    )
    """What a trajectory must satisfy; the judge says pass or fail with a reason."""


class ValidateConfig(Section):
    rules: list[str] = Field(default_factory=lambda: sorted(RULES))
    """Reason codes of the rules to run (all format and logic rules by default)."""
    min_steps: int = Field(2, ge=0)
    """Fewest assistant steps (turns) a tool-using trajectory may have: a call and an answer."""
    max_steps: int | None = Field(None, ge=1)
    """Most assistant steps before a trajectory counts as a detour; none: `generate.max_steps`,
    what the teacher was allowed (a lower bound here pays for trajectories only to reject
    them), or 15 for trajectories brought to `fcsft validate`."""
    judge: JudgeConfig | None = None
    """An LLM judge after the rules (off unless set); failures get the code `judge.rubric`."""
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
            min_steps=self.min_steps,
            max_steps=self.max_steps or MAX_STEPS,
            small_integers=self.small_integers,
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


def validate_stage(
    config: ValidateConfig, name: str = "validate", judge: Any = None, judge_name: str = ""
) -> Stage:
    """The stage; with `config.judge` set, `judge` is the client that answers for that role."""
    settings = config.settings()

    async def process(obj: dict[str, Any]) -> list[Outcome]:
        failed = check(obj, config, settings)
        if config.judge is not None and judge is not None and not failed:
            failed += await judge_verdicts(obj, config.judge, judge, judge_name)
        # The judge failing to answer says nothing about the trajectory: ask again next run.
        return [Outcome(obj, failed, retry=any(v.rule == "judge.error" for v in failed))]

    return Stage(
        name,
        process,
        config=config.model_dump(mode="json") | {"judge": judge_name},
        parallel=records_at_once(judge) if config.judge else 1,
        set_aside=True,  # trajectories a user brings: a bad line is rejected, the rest checked
    )


async def judge_verdicts(
    obj: dict[str, Any], judge: JudgeConfig, model: Any, model_name: str
) -> list[Verdict]:
    """The judge's failure as a verdict; an unreadable verdict is a failure of its own."""
    from fcsft.formats.json_text import JsonProblem, loads_lenient
    from fcsft.models.ask import ask

    conversation = "\n".join(
        f"{m['role']}: {m.get('content') or ''}"
        + "".join(
            f" [call {c['function']['name']}({c['function']['arguments']})]"
            for c in m.get("tool_calls") or []
        )
        for m in obj["messages"]
    )
    answer = await ask(
        model,
        model_name,
        JUDGE_PROMPT.format(rubric=judge.rubric, conversation=conversation),
        temperature=0.0,
        max_tokens=200,
    )
    if answer.error:
        return [Verdict(stage="validate", rule="judge.error", passed=False, reason=answer.error)]
    start, end = answer.text.find("{"), answer.text.rfind("}")
    try:
        verdict = loads_lenient(answer.text[start : end + 1]) if start >= 0 else None
    except JsonProblem:
        verdict = None
    if not isinstance(verdict, dict) or not isinstance(verdict.get("pass"), bool):
        return [
            Verdict(
                stage="validate",
                rule="judge.unreadable",
                passed=False,
                reason=f"judge reply is not a verdict: {answer.text[:100]!r}",
            )
        ]
    if verdict["pass"]:
        return []
    return [
        Verdict(
            stage="validate",
            rule="judge.rubric",
            passed=False,
            reason=str(verdict.get("reason") or "the judge failed it without giving a reason"),
        )
    ]
