"""A conversation of three user turns that every stage must carry: the question, a fact the
user gives, and a follow-up that needs that fact and a new call."""

from __future__ import annotations

from fcsft.records import (
    FinalAnswer,
    Meta,
    Observation,
    Think,
    Tool,
    ToolCall,
    Trajectory,
    User,
)

SEARCH = Tool(
    name="search",
    description="Search company filings.",
    parameters={
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
)
PYTHON = Tool(
    name="python",
    description="Run Python code and return what it prints.",
    parameters={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
)
QUESTION = "What was Orrin Dynamics revenue in fiscal 2025?"
FACT = "For comparison, our own revenue in fiscal 2025 was $310.4 million."
FOLLOW_UP = "What share of Orrin's revenue is ours?"
FILING = "Orrin Dynamics: revenue for fiscal 2025 was $1,482.6 million (2024: $1,301.9 million)."


def three_user_turns(ident: str = "mt1", **meta: object) -> Trajectory:
    """The question answered by a search, the user's own figure acknowledged without a call,
    and a share worked out in Python from that figure and the searched one."""
    return Trajectory(
        id=ident,
        question=QUESTION,
        system="You answer questions about company filings.",
        tools=[SEARCH, PYTHON],
        steps=[
            Think(text="Search the filings."),
            ToolCall(
                name="search", arguments={"query": "Orrin Dynamics revenue 2025"}, id="call_0"
            ),
            Observation(content=FILING, call_id="call_0"),
            FinalAnswer(text="Orrin Dynamics' revenue was $1,482.6 million in fiscal 2025."),
            User(text=FACT),
            FinalAnswer(text="Noted: your revenue was $310.4 million in fiscal 2025."),
            User(text=FOLLOW_UP),
            Think(text="Divide the user's figure by the searched one."),
            ToolCall(
                name="python",
                arguments={"code": "print(round(310.4 / 1482.6 * 100, 1))"},
                id="call_1",
            ),
            Observation(content="20.9", call_id="call_1"),
            FinalAnswer(text="Your $310.4 million is 20.9% of Orrin Dynamics' $1,482.6 million."),
        ],
        meta=Meta(task_id=ident, family=ident, **meta),
    )
