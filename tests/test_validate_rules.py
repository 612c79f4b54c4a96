"""Every reason code, with a record that trips it and a near-miss that must pass."""

import pytest

from fcsft.formats import get_format
from fcsft.records import FinalAnswer, Meta, Observation, Think, Tool, ToolCall, Trajectory
from fcsft.tools.validation import SchemaChecker
from fcsft.validate.stage import ValidateConfig, check

SEARCH = Tool(
    name="search",
    description="Search documents.",
    parameters={
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "max_results": {"type": "integer"},
            "sort": {"type": "string", "enum": ["relevance", "date"]},
        },
        "required": ["query"],
    },
)
PYTHON = Tool(
    name="python",
    parameters={"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]},
)
QUESTION = "What was Harbor Lane Foods revenue in fiscal 2025?"
OBSERVED = (
    "Harbor Lane Foods: revenue for fiscal 2025 was $1,482.6 million (2024: $1,301.9 million)."
)


def call(n, name="search", **arguments):
    return ToolCall(name=name, arguments=arguments or {"query": "Harbor Lane revenue"}, id=f"c{n}")


def obs(n, content=OBSERVED, error=False):
    return Observation(content=content, call_id=f"c{n}", error=error)


def trajectory(*steps, no_tool=False, question=QUESTION):
    return Trajectory(
        id="t",
        question=question,
        tools=[SEARCH, PYTHON],
        steps=list(steps),
        meta=Meta(no_tool=no_tool),
    )


GOOD = trajectory(
    Think(text="look it up"),
    call(0),
    obs(0),
    FinalAnswer(text="Harbor Lane Foods' revenue was $1,482.6 million in fiscal 2025."),
)


def failures(item):
    obj = item if isinstance(item, dict) else get_format("openai").render(item)
    return {v.rule: v.reason for v in check(obj, ValidateConfig(), ValidateConfig().settings())}


def test_good_trajectory_passes_every_rule():
    assert failures(GOOD) == {}


@pytest.mark.parametrize(
    ("item", "code", "reason"),
    [
        (
            trajectory(call(0, name="lookup"), obs(0), FinalAnswer(text="$1,482.6 million")),
            "format.unknown_tool",
            "c0 calls 'lookup'; tools: python, search",
        ),
        (
            trajectory(call(0, max_results=3), obs(0), FinalAnswer(text="$1,482.6 million")),
            "format.missing_required",
            "c0 search: 'query' is a required property",
        ),
        (
            trajectory(call(0, query="x", max_results="3"), obs(0), FinalAnswer(text="1,482.6")),
            "format.bad_type",
            "c0 search: max_results: '3' is not of type 'integer'",
        ),
        (
            trajectory(call(0, query="x", sort="newest"), obs(0), FinalAnswer(text="1,482.6")),
            "format.bad_type",
            "c0 search: sort: 'newest' is not one of ['relevance', 'date']",
        ),
        (
            trajectory(call(0, query="x", limit=3), obs(0), FinalAnswer(text="1,482.6")),
            "format.unknown_param",
            "c0 search: no parameter 'limit'",
        ),
        (
            trajectory(FinalAnswer(text="It was $1,482.6 million.")),
            "logic.too_few_steps",
            "1 assistant step(s); at least 2 (a call and an answer)",
        ),
        (
            trajectory(
                *[s for n in range(16) for s in (call(n, query=f"q{n}"), obs(n))],
                FinalAnswer(text="1,482.6"),
            ),
            "logic.too_many_steps",
            "17 assistant steps; at most 15",
        ),
        (
            trajectory(call(0), obs(0)),
            "logic.no_final_answer",
            "the trajectory ends without a final answer",
        ),
        (
            trajectory(
                call(0),
                obs(0),
                call(1, query="harbor lane  REVENUE"),
                obs(1),
                FinalAnswer(text="1,482.6"),
            ),
            "logic.redundant_call",
            "c1 repeats c0 (search with the same arguments)",
        ),
        (
            trajectory(
                call(0),
                obs(0, "timeout", error=True),
                FinalAnswer(text="Revenue was 1,482.6 million."),
            ),
            "logic.ignored_error",
            "c0 failed, and the next step answers as if it had not",
        ),
        (
            trajectory(call(0), obs(0), FinalAnswer(text="Revenue was $1,520.3 million.")),
            "logic.ungrounded_answer",
            "number 1520.3 appears in no observation or the question",
        ),
        (
            trajectory(
                call(0), obs(0), FinalAnswer(text="Orrin Dynamics reported $1,482.6 million.")
            ),
            "logic.ungrounded_answer",
            "name 'Orrin Dynamics' appears in no observation or the question",
        ),
        (
            trajectory(
                call(0), obs(0), FinalAnswer(text="As of 2026-10-31 it was 1,482.6 million.")
            ),
            "logic.ungrounded_answer",
            "date 2026-10-31 appears in no observation or the question",
        ),
        (
            trajectory(
                call(0, name="python", code="print(2+2)"),
                obs(0, "4"),
                FinalAnswer(text="4"),
                no_tool=True,
                question="2+2=?",
            ),
            "logic.should_not_call",
            "1 call(s) on a question that must be answered without tools",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "q"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "a", "function": {"name": "search", "arguments": '{"query": '}}
                        ],
                    },
                ]
            },
            "format.parse",
            "messages.1.tool_calls.0.function.arguments: arguments are not valid JSON",
        ),
    ],
)
def test_each_reason_code(item, code, reason):
    found = failures(item)
    assert code in found, found
    assert found[code].startswith(reason)


@pytest.mark.parametrize(
    "answer",
    [
        "Revenue was 1234.50 thousand dollars.",  # "1,234.5" observed as "1234.50"
        "It was $1.48 billion.",  # rescaled and rounded from 1,482.6 million
        "About $1,483 million, up from 1,302 in 2024.",  # rounded
        "Revenue reached USD 1,482.6 million; the CEO called it 2 good years.",  # acronyms, counts
        "Harbor Lane's revenue was 1,482.6 million.",  # possessive of a known name
    ],
)
def test_grounding_near_misses_pass(answer):
    observed = OBSERVED.replace("$1,482.6 million", "$1,482.6 million, or 1234.50 thousand in Q4")
    item = trajectory(call(0), obs(0, observed), FinalAnswer(text=answer))
    assert "logic.ungrounded_answer" not in failures(item)


def test_other_near_misses_pass():
    retried = trajectory(
        call(0),
        obs(0, "timeout", error=True),
        call(1),
        obs(1),
        FinalAnswer(text="$1,482.6 million"),
    )
    assert failures(retried) == {}  # the same call after an error is a retry, not redundancy
    told = trajectory(
        call(0),
        obs(0, "timeout", error=True),
        FinalAnswer(text="The search failed, so I cannot say."),
    )
    assert "logic.ignored_error" not in failures(told)
    no_tool = trajectory(FinalAnswer(text="4"), no_tool=True, question="2+2=?")
    assert failures(no_tool) == {}
    assert (
        failures(
            trajectory(
                call(0, query="x", max_results=3, sort="date"),
                obs(0),
                FinalAnswer(text="$1,482.6 million"),
            )
        )
        == {}
    )


def test_each_trajectory_is_checked_against_its_schemas_once_and_its_own_findings_stay_its_own(
    monkeypatch,
):
    checked = []
    violations = SchemaChecker.violations
    monkeypatch.setattr(
        SchemaChecker,
        "violations",
        lambda self, value: checked.append(value) or violations(self, value),
    )
    bad = trajectory(
        Think(text="look it up"),
        call(0, max_results="three"),  # no query, and a string for an integer
        obs(0),
        FinalAnswer(text="Harbor Lane Foods' revenue was $1,482.6 million in fiscal 2025."),
    )
    assert set(failures(bad)) == {"format.missing_required", "format.bad_type"}
    assert len(checked) == 1  # three rules read one check
    assert failures(GOOD) == {}  # the next trajectory's own
    assert set(failures(bad)) == {"format.missing_required", "format.bad_type"}
    assert len(checked) == 3


def test_rules_are_chosen_by_name():
    config = ValidateConfig(rules=["format.unknown_tool"])
    obj = get_format("openai").render(trajectory(FinalAnswer(text="made up 999")))
    assert check(obj, config, config.settings()) == []
    with pytest.raises(ValueError, match="unknown rules"):
        ValidateConfig(rules=["logic.vibes"])


def test_llm_judge_is_off_by_default_and_explains_failures(tmp_path):
    from fcsft.jsonl import write_jsonl
    from fcsft.models.base import ChatResponse
    from fcsft.runner.run import run_stage
    from fcsft.validate.stage import JudgeConfig, validate_stage

    class Judge:
        async def chat(self, request):
            prompt = request.messages[-1]["content"]
            verdict = (
                '{"pass": false, "reason": "the answer ignores fiscal 2024"}'
                if "2024 vs" in prompt
                else 'Sure. {"pass": true}'
            )
            return ChatResponse(message={"content": verdict})

    good = GOOD.model_copy(update={"id": "t1"})
    other = GOOD.model_copy(update={"id": "t2", "question": "Revenue in 2024 vs fiscal 2025?"})
    source = tmp_path / "in.jsonl"
    write_jsonl(source, (get_format("openai").render(t) for t in (good, other)))
    assert run_stage(validate_stage(ValidateConfig()), tmp_path / "a", [source])["rejected"] == 0
    config = ValidateConfig(judge=JudgeConfig(rubric="Answer every year asked about."))
    stats = run_stage(
        validate_stage(config, judge=Judge(), judge_name="judge"), tmp_path / "b", [source]
    )
    assert stats["reasons"] == {"judge.rubric": 1}


REPORTS_ERROR = [
    "Error: no filing for Nobody Inc",
    "ERROR: rate limit reached",
    "  error: connection refused",
    "KeyError: 'Nobody Inc'",
    "requests.exceptions.HTTPError: 404 Client Error",
    "fatal: not a git repository",
    'Traceback (most recent call last):\n  File "main.py", line 1\nZeroDivisionError: x',
    'partial output\n[stderr]\nTraceback (most recent call last):\n  File "main.py"',
    "HTTP 404",
    "HTTP/1.1 503 Service Unavailable",
    "404 Not Found",
    "429 Too Many Requests: retry in 2s",
    '{"error": "no filing for Nobody Inc"}',
    '{"error": {"code": 500, "message": "upstream failed"}, "data": null}',
]
REPORTS_NO_ERROR = [
    "No error occurred; revenue was $1,482.6 million.",
    "Errors: 0, warnings: 2",
    "Error rate: 2% of orders (fiscal 2025)",
    "ErrorHandler: registered for /api",
    "Terror: a 2025 film",
    "The traceback module formats stack traces.",
    '{"error": null, "revenue": 1482.6}',
    '{"error": false, "ok": true}',
    '{"error": "", "items": []}',
    '{"result": "see the error handling guide"}',
    "HTTP 200 OK",
    "404 pages were indexed",
    "404 Not Foundation grants were awarded",
    "Harbor Lane Foods revenue: an error in last year's filing was corrected.",
]


@pytest.mark.parametrize("content", REPORTS_ERROR)
def test_a_result_that_reports_an_error_in_its_text_counts_as_failed(content):
    assert Observation(content=content, call_id="c0").failed


@pytest.mark.parametrize("content", REPORTS_NO_ERROR)
def test_a_result_that_only_mentions_errors_does_not(content):
    assert not Observation(content=content, call_id="c0").failed


def _imported(first_result: str) -> dict:
    """An OpenAI-format record as a user brings it: tool results carry no is_error flag."""
    arguments = '{"query": "Harbor Lane revenue"}'
    calls = [
        {"id": f"c{n}", "type": "function", "function": {"name": "search", "arguments": arguments}}
        for n in range(2)
    ]
    return {
        "tools": [{"type": "function", "function": SEARCH.model_dump()}],
        "messages": [
            {"role": "user", "content": QUESTION},
            {"role": "assistant", "content": None, "tool_calls": calls[:1]},
            {"role": "tool", "tool_call_id": "c0", "content": first_result},
            {
                "role": "assistant",
                "content": "The search failed; trying again.",
                "tool_calls": calls[1:],
            },
            {"role": "tool", "tool_call_id": "c1", "content": OBSERVED},
            {"role": "assistant", "content": "Revenue was $1,482.6 million in fiscal 2025."},
        ],
        "meta": {"id": "imported"},
    }


@pytest.mark.parametrize("content", REPORTS_ERROR[:1] + REPORTS_ERROR[-6:])
def test_retrying_after_an_error_told_in_text_is_not_redundant(content):
    assert "logic.redundant_call" not in failures(_imported(content))


@pytest.mark.parametrize("content", REPORTS_NO_ERROR[:2] + REPORTS_NO_ERROR[6:8])
def test_repeating_a_call_that_worked_is_still_redundant(content):
    assert "logic.redundant_call" in failures(_imported(content))


def test_answering_past_an_error_told_in_text_is_an_ignored_error():
    record = _imported("HTTP/1.1 503 Service Unavailable")
    record["messages"][3:] = [{"role": "assistant", "content": "Revenue was $1,482.6 million."}]
    assert "logic.ignored_error" in failures(record)
    record["messages"][2]["content"] = "HTTP/1.1 200 OK"
    assert "logic.ignored_error" not in failures(record)
