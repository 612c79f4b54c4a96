"""The records every stage reads and writes.

A trajectory is a flat list of steps. Its shape is fixed by one grammar, checked by `turns`:

    turn  := user? think? ( say? tool_call+ observation* | final_answer )?
    steps := turn*            (a turn with neither calls nor an answer may only be the last)

The trajectory's `question` is the first user message; a `user` step is a later one (a
follow-up). It opens the turn that answers it, may only follow a turn that is done (its
answer given, or every call answered), and is never the last step: a user message always
has a reply. A trajectory with no `user` step is a single question, written exactly as before
user steps existed.

`say` is text the assistant shows beside its calls (OpenAI's `content` next to `tool_calls`):
visible, unlike thinking. Observations answer the calls of their own turn, in call order; only
the last turn may have fewer observations than calls (a run cut off midway). Every renderer
walks `turns`, so no format can hold a shape another cannot.

A trajectory's `weights` say which assistant turns are trained on: 0 or 1 a turn, in turn
order (OpenAI's per-message `weight`); empty means every turn is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fcsft.tool_errors import reports_error

_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}


class Record(BaseModel):
    """Base of all records: strict about unknown fields, with a JSON round trip."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_defaults=True)

    @classmethod
    def from_json(cls, data: dict[str, Any]):
        return cls.model_validate(data)


class Tool(Record):
    """A function the model may call, described by a JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: dict(_EMPTY_SCHEMA))

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))


class Call(Record):
    """One planned or made tool call."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class _Prose(Record):
    """A step of free text. Surrounding whitespace carries no meaning and no format keeps it
    the same way, so it is dropped on the way in."""

    text: str

    @field_validator("text")
    @classmethod
    def _strip(cls, text: str) -> str:
        return text.strip()


class _NonEmptyProse(_Prose):
    """Free text that means nothing when empty; `empty` says why, as the error."""

    empty: ClassVar[str]

    @field_validator("text")
    @classmethod
    def _not_empty(cls, text: str) -> str:
        if not text:
            raise ValueError(cls.empty)
        return text


class Think(_Prose):
    type: Literal["think"] = "think"


class Say(_NonEmptyProse):
    """Text shown to the user in a turn that calls tools; never empty."""

    type: Literal["say"] = "say"
    empty: ClassVar[str] = "text shown beside tool calls may not be empty"


class ToolCall(Record):
    type: Literal["tool_call"] = "tool_call"
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str


class Observation(Record):
    type: Literal["observation"] = "observation"
    content: str
    call_id: str
    error: bool = False

    @property
    def failed(self) -> bool:
        """Whether the call failed: flagged so, or saying so in its text, as results in files
        from elsewhere do (see `fcsft.tool_errors`)."""
        return self.error or reports_error(self.content)


class FinalAnswer(_Prose):
    type: Literal["final_answer"] = "final_answer"


class User(_NonEmptyProse):
    """A later user message: a follow-up after the assistant's reply; never empty."""

    type: Literal["user"] = "user"
    empty: ClassVar[str] = "a user message may not be empty"


Step = Annotated[
    Think | Say | ToolCall | Observation | FinalAnswer | User, Field(discriminator="type")
]


def canonical(value: Any) -> Any:
    """Arguments compared by meaning: 1 == 1.0, surrounding spaces and letter case ignored."""
    if isinstance(value, str):
        return " ".join(value.split()).lower()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [canonical(item) for item in value]
    if isinstance(value, dict):
        return {key: canonical(item) for key, item in sorted(value.items())}
    return value


def call_id(index: int) -> str:
    """The id a call gets when its source gave none: its 0-based position in the trajectory."""
    return f"call_{index}"


class Usage(Record):
    """Tokens and cost of one reply, or added up over a run's replies."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    def add(self, other: Usage) -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost


class Verdict(Record):
    """One rule's decision about one record; `rule` is a stable reason code like `format.parse`."""

    stage: str
    rule: str
    passed: bool
    reason: str = ""


class Meta(BaseModel):
    """What a trajectory carries besides its conversation. Unknown keys are kept as they are."""

    model_config = ConfigDict(extra="allow")

    task_id: str | None = None
    family: str | None = None
    how: str | None = None
    source: str | None = None
    no_tool: bool = False
    related: list[str] = Field(default_factory=list)
    split: Literal["train", "test"] | None = None
    model: str | None = None
    usage: Usage | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    state: dict[str, Any] | None = None
    """The state the trajectory's calls left in its stateful tools, by class (each one's
    public attributes as JSON; see `fcsft.tools.environment`), to check what the calls did."""


class Trajectory(Record):
    """A question answered by a model, with every thought, call, observation and answer, and
    any follow-up user messages (`User` steps) with theirs."""

    id: str
    question: str
    system: str | None = None
    tools: list[Tool] = Field(default_factory=list)
    steps: list[Step] = Field(default_factory=list)
    weights: list[Literal[0, 1]] = Field(default_factory=list)
    meta: Meta = Field(default_factory=Meta)

    @model_validator(mode="after")
    def _grammar(self) -> Trajectory:
        found = turns(self.steps)
        if self.weights and len(self.weights) != len(found):
            raise ValueError(
                f"weights has {len(self.weights)} entries for {len(found)} assistant turns"
            )
        return self

    def weight(self, number: int) -> int:
        """The training weight of assistant turn `number` (1 when no weights are given)."""
        return self.weights[number] if self.weights else 1

    def to_json(self) -> dict[str, Any]:
        data = super().to_json()
        # Steps keep their `type` even though it is a default: it is the discriminator.
        data["steps"] = [step.model_dump(mode="json") for step in self.steps]
        return data

    @property
    def calls(self) -> list[ToolCall]:
        return [step for step in self.steps if isinstance(step, ToolCall)]

    @property
    def final_answer(self) -> str | None:
        last = self.steps[-1] if self.steps else None
        return last.text if isinstance(last, FinalAnswer) else None

    @property
    def user_turns(self) -> list[str]:
        """Every user message in order: the question, then each follow-up."""
        return [self.question] + [step.text for step in self.steps if isinstance(step, User)]


class Seed(Record):
    """A question from production logs or an expert, optionally with the calls it should make."""

    id: str
    question: str
    followups: list[str] = Field(default_factory=list)
    """Later user messages of the same conversation, in order, each asked after the answer
    to the one before."""

    @field_validator("followups")
    @classmethod
    def _followups_have_text(cls, followups: list[str]) -> list[str]:
        if any(not text.strip() for text in followups):
            raise ValueError("a follow-up may not be empty")
        return [text.strip() for text in followups]

    source: Literal["log", "expert", "import"] = "import"
    domain: str = ""
    plan: list[Call] = Field(default_factory=list)
    tags: list[str] = Field(default_factory=list)
    environment: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Where the state of the stateful tools starts, by class name (BFCL's `initial_config`
    layout: `{GorillaFileSystem: {root: {...}}}`); a class not named starts as its tools entry
    says."""

    @property
    def no_tool(self) -> bool:
        return "no_tool" in self.tags


class Task(Record):
    """A seed or one of its expansions; `family` is the root seed id and the unit of splitting."""

    id: str
    question: str
    followups: list[str] = Field(default_factory=list)
    """Later user messages, in order (see `Seed.followups`)."""
    family: str
    how: Literal["seed", "rewrite", "vary", "combine"] = "seed"
    parents: list[str] = Field(default_factory=list)
    related: list[str] = Field(default_factory=list)
    """Other families a combined task draws on: a split must keep them on one side with it."""
    source: Literal["log", "expert", "import"] = "import"
    domain: str = ""
    tools: list[str] = Field(default_factory=list)
    plan: list[Call] | None = None
    no_tool: bool = False
    environment: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Where the state of the stateful tools starts (see `Seed.environment`)."""


class GrammarError(ValueError):
    """A step sequence no trajectory may have; `index` is the offending step."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


@dataclass
class Turn:
    """One assistant turn and the observations that answer it; `user` is the follow-up user
    message the turn opens with, if any."""

    user: str | None = None
    think: str | None = None
    say: str | None = None
    calls: list[ToolCall] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    final: str | None = None

    @property
    def open(self) -> bool:
        """Whether a following step can still belong to this turn."""
        return self.final is None and not self.observations

    @property
    def awaiting(self) -> bool:
        """Whether the turn holds a user message and nothing of the assistant's yet."""
        return (
            self.user is not None
            and self.think is None
            and self.say is None
            and not self.calls
            and self.final is None
        )

    @property
    def done(self) -> bool:
        """Whether the turn has given its answer or has every call answered."""
        if self.final is not None:
            return True
        return bool(self.calls) and len(self.observations) == len(self.calls)


def append_turn(turn_list: list[Turn], turn: Turn) -> None:
    """Add an assistant turn; it fills the user message waiting for a reply, if one is."""
    if turn_list and turn_list[-1].awaiting:
        turn.user = turn_list.pop().user
    turn_list.append(turn)


def turns(steps: list[Any]) -> list[Turn]:
    """Group steps into turns, or raise GrammarError at the first step out of place."""
    out: list[Turn] = []
    for index, step in enumerate(steps):
        turn = out[-1] if out else None
        if (
            turn is not None
            and turn.say is not None
            and not turn.calls
            and not isinstance(step, ToolCall)
        ):
            raise _say_without_calls(index)
        if isinstance(step, User):
            if turn is None:
                raise GrammarError(
                    index, "a user message before any reply; the first one is the question"
                )
            if turn.awaiting:
                raise GrammarError(index, "two user messages with no reply between them")
            if turn.calls and len(turn.observations) < len(turn.calls):
                raise _missing_observations(index, turn)
            if not turn.done:
                raise GrammarError(index, "a user message after a turn with no calls or answer")
            out.append(Turn(user=step.text))
        elif isinstance(step, Say):
            if turn is not None and turn.calls and len(turn.observations) < len(turn.calls):
                raise _missing_observations(index, turn)
            if turn is not None and (
                turn.awaiting or (turn.think is not None and not turn.calls and turn.open)
            ):
                turn.say = step.text
            else:
                out.append(Turn(say=step.text))
        elif isinstance(step, Think):
            if (
                turn is not None
                and turn.think is not None
                and not turn.calls
                and turn.final is None
            ):
                raise GrammarError(index, "two thinking blocks in a row")
            if turn is not None and turn.calls and len(turn.observations) < len(turn.calls):
                raise _missing_observations(index, turn)
            if turn is not None and turn.awaiting:
                turn.think = step.text
            else:
                out.append(Turn(think=step.text))
        elif isinstance(step, ToolCall):
            if turn is None or turn.final is not None or turn.observations:
                if turn is not None and len(turn.observations) < len(turn.calls):
                    raise _missing_observations(index, turn)
                turn = Turn()
                out.append(turn)
            turn.calls.append(step)
        elif isinstance(step, Observation):
            if turn is None or len(turn.observations) >= len(turn.calls):
                raise GrammarError(index, "an observation with no tool call left to answer")
            expected = turn.calls[len(turn.observations)].id
            if step.call_id != expected:
                raise GrammarError(
                    index, f"observation answers call {step.call_id!r} but {expected!r} is next"
                )
            turn.observations.append(step)
        elif isinstance(step, FinalAnswer):
            if turn is not None and turn.calls and len(turn.observations) < len(turn.calls):
                raise _missing_observations(index, turn)
            if turn is None or not (
                turn.awaiting or (turn.think is not None and not turn.calls and turn.final is None)
            ):
                turn = Turn()
                out.append(turn)
            turn.final = step.text
        else:  # pragma: no cover - the Step union admits nothing else
            raise GrammarError(index, f"unknown step {step!r}")
        if (
            out
            and out[-1].final is not None
            and index != len(steps) - 1
            and not isinstance(steps[index + 1], User)
        ):
            raise GrammarError(index + 1, "steps after the final answer")
    if out and out[-1].say is not None and not out[-1].calls:
        raise _say_without_calls(len(steps))
    if out and out[-1].awaiting:
        raise GrammarError(len(steps) - 1, "a user message with no reply after it")
    ids = [call.id for call in (c for turn in out for c in turn.calls)]
    if len(set(ids)) != len(ids):
        raise GrammarError(0, "two tool calls share one id")
    return out


def exchanges(turn_list: list[Turn]) -> list[list[Turn]]:
    """Turns grouped by the user message they answer: the question's, then each follow-up's."""
    groups: list[list[Turn]] = [[]]
    for turn in turn_list:
        if turn.user is not None:
            groups.append([])
        groups[-1].append(turn)
    return groups


def _say_without_calls(index: int) -> GrammarError:
    return GrammarError(index, "text shown beside tool calls must be followed by a tool call")


def _missing_observations(index: int, turn: Turn) -> GrammarError:
    return GrammarError(
        index, f"{len(turn.calls)} tool call(s) answered by {len(turn.observations)} observation(s)"
    )


def steps_of(turn_list: list[Turn]) -> list[Any]:
    """The inverse of `turns`."""
    steps: list[Any] = []
    for turn in turn_list:
        if turn.user is not None:
            steps.append(User(text=turn.user))
        if turn.think is not None:
            steps.append(Think(text=turn.think))
        if turn.say is not None:
            steps.append(Say(text=turn.say))
        steps.extend(turn.calls)
        steps.extend(turn.observations)
        if turn.final is not None:
            steps.append(FinalAnswer(text=turn.final))
    return steps
