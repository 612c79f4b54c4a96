"""The proof's data builder (examples/bfcl-smollm2/build.py): should-not-call near misses."""

from types import SimpleNamespace

from script_module import load


def task(ident, tool, domain="live_simple"):
    plan = [{"name": tool, "arguments": {}}]
    return {
        "id": ident,
        "question": f"q {ident}",
        "family": ident,
        "domain": domain,
        "tools": [tool],
        "plan": plan,
    }


def test_near_misses_offer_a_question_only_unrelated_tools():
    build = load("examples/bfcl-smollm2/build.py")
    tasks = [
        task("a", "get_weather"),
        task("b", "weather_forecast"),  # shares "weather" with a: never offered to a
        task("c", "getStockPrice"),
        task("d", "calculate_bmi"),
        task("e", "irrelevant", domain="live_irrelevance"),
    ]
    specs = {t["id"]: [f"spec of {t['tools'][0]}"] for t in tasks}
    made, offered = build.near_misses(tasks, specs, count=10, seed=0)

    assert {m["id"] for m in made} == {"a-near-miss", "b-near-miss", "c-near-miss", "d-near-miss"}
    for near in made:
        original = next(t for t in tasks if f"{t['id']}-near-miss" == near["id"])
        assert near["no_tool"] and not near.get("plan")
        assert near["question"] == original["question"]
        assert near["family"] == original["family"]  # the split keeps both sides together
        assert near["tools"] != original["tools"]
        assert offered[near["id"]] == [f"spec of {near['tools'][0]}"]
    weather = {"get_weather", "weather_forecast"}
    for near in made:
        if near["id"] in ("a-near-miss", "b-near-miss"):
            assert not weather & set(near["tools"])
    assert build._words("Weather.getForecast_v2") == {"weather", "forecast", "v2"}


def test_sibling_misses_offer_a_question_the_rest_of_its_own_list():
    build = load("examples/bfcl-smollm2/build.py")
    spec = SimpleNamespace
    tasks = [
        task("m", "get_weather", domain="live_multiple"),
        task("n", "get_weather", domain="live_multiple"),  # its list holds nothing else
        task("s", "get_weather"),  # live_simple: not this kind's
    ]
    specs = {
        "m": [spec(name="get_weather"), spec(name="weather_forecast"), spec(name="stock_price")],
        "n": [spec(name="get_weather"), spec(name="weatherAlerts")],
        "s": [spec(name="get_weather")],
    }
    made, offered = build.sibling_misses(tasks, specs, count=10, seed=0)

    assert [m["id"] for m in made] == ["m-sibling-miss"]
    assert made[0]["tools"] == ["stock_price"]  # weather_forecast shares "weather": never offered
    assert made[0]["no_tool"] and made[0]["family"] == "m" and made[0]["question"] == "q m"
    assert offered["m-sibling-miss"] == [specs["m"][2]]


def test_python_call_answers_become_plans_and_anything_but_literals_is_skipped():
    build = load("examples/bfcl-smollm2/build.py")
    [first, second] = build.python_calls(["math.hypot(x=3, y=[4.0, 'a'])", "f(flag=True)"])
    assert (first.name, first.arguments) == ("math_hypot", {"x": 3, "y": [4.0, "a"]})
    assert (second.name, second.arguments) == ("f", {"flag": True})
    assert build.python_calls(["f(x=math.pi)"]) is None
    assert build.python_calls(["f(3)"]) is None  # a positional argument has no name to check
    assert build.python_calls(["f(x=1", "g(y=2)"]) is None
    assert build.python_calls([]) is None
