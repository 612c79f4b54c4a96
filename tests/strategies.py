"""Hypothesis strategies that generate any trajectory the grammar allows."""

from __future__ import annotations

from hypothesis import strategies as st

from fcsft.formats.sharegpt import RESULT_SEPARATOR
from fcsft.formats.tagged import _ANY_TAG as TAG  # the tags the format cannot carry in text
from fcsft.records import (
    FinalAnswer,
    Meta,
    Observation,
    Say,
    Think,
    Tool,
    ToolCall,
    Trajectory,
    User,
    call_id,
    turns,
)

text = st.text(max_size=40)
# The tagged format cannot carry its own tags inside free text; everything else is fair game.
free_text = text.filter(lambda value: not TAG.search(value))
said_text = free_text.filter(lambda value: bool(value.strip()))
# ShareGPT joins parallel results with LLaMA-Factory's separator, so a result cannot hold it.
observation_text = text.filter(
    lambda value: "</observation>" not in value and RESULT_SEPARATOR not in value
)

json_scalar = (
    st.none()
    | st.booleans()
    | st.integers()
    | text
    | st.floats(allow_nan=False, allow_infinity=False)
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=8,
)
arguments = st.dictionaries(text, json_value, max_size=4)
tools = st.lists(
    st.builds(
        Tool,
        name=st.text(min_size=1, max_size=12),
        description=text,
        parameters=st.just(
            {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
        ),
    ),
    max_size=3,
)


def _exchange(draw, steps: list, calls_made: int, closed: bool, replied: bool) -> int:
    """Append the assistant's turns answering one user message; returns the calls made so far.
    `closed`: the exchange must end done (an answer, or every call answered), as one followed
    by another user message must; `replied`: it must hold a turn, as a follow-up's must."""
    n_turns = draw(st.integers(1 if closed or replied else 0, 4))
    for number in range(n_turns):
        last = number == n_turns - 1
        if draw(st.booleans()):
            steps.append(Think(text=draw(free_text)))
        endings = [] if closed else ["cut", "think_only"]
        kind = draw(st.sampled_from(["calls", "final"] + (endings if last else [])))
        if kind == "think_only":
            if not steps or not isinstance(steps[-1], Think):
                steps.append(Think(text=draw(free_text)))
            break
        if kind == "final":
            steps.append(FinalAnswer(text=draw(free_text)))
            break
        if draw(st.booleans()):
            steps.append(Say(text=draw(said_text)))
        batch = []
        for _ in range(draw(st.integers(1, 3))):
            canonical = draw(st.booleans())
            ident = call_id(calls_made) if canonical else f"x{calls_made}-{draw(text)}"
            batch.append(
                ToolCall(
                    name=draw(st.text(min_size=1, max_size=12)), arguments=draw(arguments), id=ident
                )
            )
            calls_made += 1
        steps.extend(batch)
        if kind == "calls":
            steps.extend(
                Observation(
                    content=draw(observation_text), call_id=call.id, error=draw(st.booleans())
                )
                for call in batch
            )
    return calls_made


@st.composite
def trajectories(draw, max_user_turns: int = 3) -> Trajectory:
    """Any trajectory: one to `max_user_turns` user messages, each answered by its turns."""
    steps: list = []
    calls_made = 0
    n_users = draw(st.integers(1, max_user_turns))
    for number in range(n_users):
        if number:
            steps.append(User(text=draw(said_text)))
        closed = number < n_users - 1
        calls_made = _exchange(draw, steps, calls_made, closed, replied=number > 0)
    meta = Meta(
        task_id=draw(st.none() | text),
        no_tool=draw(st.booleans()),
        **draw(st.dictionaries(st.sampled_from(["extra_a", "extra_b"]), json_value, max_size=2)),
    )
    n_turns = len(turns(steps))
    weights = draw(
        st.just([]) | st.lists(st.sampled_from([0, 1]), min_size=n_turns, max_size=n_turns)
    )
    return Trajectory(
        id=draw(st.text(min_size=1, max_size=10)),
        question=draw(text),
        system=draw(st.none() | text),
        tools=draw(tools),
        steps=steps,
        weights=weights,
        meta=meta,
    )
