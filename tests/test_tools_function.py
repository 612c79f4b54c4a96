"""Function tools: argument checking, failures as results, timeouts, loading, and the toolbox."""

import asyncio
import enum
import textwrap
import threading
import time

import pytest
from pydantic import BaseModel

from fcsft.errors import UserError
from fcsft.tools import FunctionTool, Toolbox, ToolResult, load_function


def run(coro):
    return asyncio.run(coro)


class Unit(enum.Enum):
    C = "celsius"
    F = "fahrenheit"


class Window(BaseModel):
    start: str
    days: int = 1


calls: list[dict] = []


def forecast(city: str, days: int = 3, unit: Unit = Unit.C, window: Window | None = None) -> dict:
    """Forecast the weather.

    Args:
        city: The city.
        days: Days ahead.
    """
    calls.append({"city": city, "days": days, "unit": unit, "window": window})
    return {"city": city, "days": days, "unit": unit.value}


def test_a_valid_call_runs_and_returns_json():
    result = run(FunctionTool(forecast).run({"city": "Lyon", "days": 2}))
    assert result == ToolResult('{"city": "Lyon", "days": 2, "unit": "celsius"}')


def test_arguments_are_converted_to_the_declared_types():
    calls.clear()
    run(
        FunctionTool(forecast).run(
            {"city": "Oslo", "unit": "fahrenheit", "window": {"start": "2025-01-01", "days": 2}}
        )
    )
    assert calls[0]["unit"] is Unit.F
    assert calls[0]["window"] == Window(start="2025-01-01", days=2)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({}, "'city' is a required property"),
        ({"city": 5}, "city: 5 is not of type 'string'"),
        ({"city": "Lyon", "days": "two"}, "days: 'two' is not of type 'integer'"),
        (
            {"city": "Lyon", "unit": "kelvin"},
            "unit: 'kelvin' is not one of ['celsius', 'fahrenheit']",
        ),
        ({"city": "Lyon", "country": "FR"}, "('country' was unexpected)"),
        ({"city": "Lyon", "window": {"days": 1}}, "window: 'start' is a required property"),
        ({"city": "Lyon", "window": {"start": 1}}, "window.start: 1 is not of type 'string'"),
        ({"city": "Lyon", "window": 7}, "window: 7 is not of type 'object' or 'null'"),
    ],
)
def test_invalid_arguments_give_an_error_result_and_no_call(arguments, expected):
    calls.clear()
    result = run(FunctionTool(forecast).run(arguments))
    assert result.error
    assert result.content.startswith("invalid arguments for forecast: ")
    assert expected in result.content
    assert calls == []


def test_every_problem_is_reported_at_once():
    result = run(FunctionTool(forecast).run({"city": 1, "days": "x"}))
    assert "city:" in result.content and "days:" in result.content


def test_non_object_arguments_are_an_error_result():
    result = run(FunctionTool(forecast).run(["Lyon"]))
    assert result.error and "expected a JSON object" in result.content


def test_a_raising_tool_gives_an_error_result():
    def divide(a: float, b: float) -> float:
        return a / b

    result = run(FunctionTool(divide).run({"a": 1, "b": 0}))
    assert result == ToolResult("divide failed: ZeroDivisionError: division by zero", error=True)


def test_a_tool_calling_sys_exit_does_not_end_the_caller():
    def quit_now() -> None:
        raise SystemExit(3)

    assert run(FunctionTool(quit_now).run({})).error


def test_a_slow_sync_tool_times_out():
    def slow(seconds: float) -> str:
        time.sleep(seconds)
        return "done"

    started = time.monotonic()
    result = run(FunctionTool(slow, timeout=0.2).run({"seconds": 6}))
    assert result == ToolResult("slow timed out after 0.2s", error=True)
    assert time.monotonic() - started < 4  # did not wait for the 6 s call


def test_a_slow_async_tool_times_out_and_is_cancelled():
    cancelled = []

    async def wait(seconds: float) -> str:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return "done"

    result = run(FunctionTool(wait, timeout=0.1).run({"seconds": 5}))
    assert result == ToolResult("wait timed out after 0.1s", error=True)
    assert cancelled == [True]


def test_a_tools_own_timeout_error_is_not_reported_as_ours():
    async def upstream() -> str:
        raise TimeoutError("the upstream API did not answer")

    result = run(FunctionTool(upstream, timeout=5).run({}))
    assert result.content == "upstream failed: TimeoutError: the upstream API did not answer"


def test_sync_tools_run_off_the_event_loop_thread():
    def where() -> str:
        return threading.current_thread().name

    assert run(FunctionTool(where).run({})).content.startswith("fcsft-tool")


def test_async_tools_are_awaited():
    async def add(a: int, b: int) -> int:
        await asyncio.sleep(0)
        return a + b

    assert run(FunctionTool(add).run({"a": 2, "b": 3})) == ToolResult("5")


def test_name_and_description_can_be_overridden():
    tool = FunctionTool(forecast, name="weather", description="Weather by city.")
    assert (tool.spec.name, tool.spec.description) == ("weather", "Weather by city.")


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "my_user_tools.py").write_text(
        textwrap.dedent('''
        def shout(text: str) -> str:
            """Upper-case a text.

            Args:
                text: What to shout.
            """
            return text.upper()

        NOT_CALLABLE = 3
    ''')
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    return "my_user_tools"


def test_module_function_strings_load_user_tools(user_module):
    tool = FunctionTool(load_function(f"{user_module}:shout"))
    assert tool.spec.parameters["properties"]["text"]["description"] == "What to shout."
    assert run(tool.run({"text": "hi"})) == ToolResult("HI")


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_colon", "expected MODULE:FUNCTION"),
        ("surely_missing_module_xyz:f", "cannot import surely_missing_module_xyz"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:NOT_CALLABLE", "is not callable"),
    ],
)
def test_bad_module_function_strings_are_user_errors(user_module, target, message):
    with pytest.raises(UserError, match=message):
        load_function(target.format(module=user_module))


def test_toolbox_from_config_runs_tools_by_name(user_module):
    async def scenario():
        async with await Toolbox.open([f"{user_module}:shout"]) as box:
            assert list(box) == ["shout"]
            assert [spec.name for spec in box.specs] == ["shout"]
            ok = await box.run("shout", {"text": "a"})
            unknown = await box.run("whisper", {})
            return ok, unknown

    ok, unknown = run(scenario())
    assert ok == ToolResult("A")
    assert unknown == ToolResult("unknown tool 'whisper'; available: shout", error=True)


def test_toolbox_refuses_two_tools_with_one_name():
    def same() -> str:
        return ""

    with pytest.raises(UserError, match="two tools are named 'same'"):
        Toolbox([same, FunctionTool(same)])


def test_tools_config_errors_name_the_entry():
    with pytest.raises(UserError) as caught:
        run(Toolbox.open(["python", {"builtin": "search"}, {"colour": "red"}]))
    message = str(caught.value)
    assert "tools.1.search.folder: Field required" in message
    assert "tools.2: expected a built-in name" in message
