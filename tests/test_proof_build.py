"""The proof's data builder (examples/bfcl-smollm2/build.py): should-not-call near misses,
parallel pairs, Python-call answers."""

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


def test_parallel_pairs_ask_two_calls_of_one_function_as_one_question():
    build = load("examples/bfcl-smollm2/build.py")

    def weather(ident, city, tools=("get_weather",)):
        return task(ident, "get_weather") | {
            "question": f"Weather in {city}?",
            "tools": list(tools),
            "plan": [{"name": "get_weather", "arguments": {"city": city}}],
        }

    tasks = [
        weather("a", "Oslo"),
        weather("b", "Rome"),
        weather("c", "Oslo"),  # the same call as a: never paired with it
        weather("d", "Lima", tools=("get_weather", "get_time")),  # another offer: never paired
        task("e", "calculate_bmi"),  # alone with its function
    ]
    specs = {t["id"]: [f"spec of {t['id']}"] for t in tasks}
    made, offered = build.parallel_pairs(tasks, specs, count=10, seed=0)

    assert len(made) == 2  # a+b and b+c, in either order
    for pair in made:
        first, second = pair["parents"]
        by_id = {t["id"]: t for t in tasks}
        assert {first, second} in ({"a", "b"}, {"b", "c"})
        assert pair["question"] == (f"{by_id[first]['question']} Also, {by_id[second]['question']}")
        assert [c["arguments"] for c in pair["plan"]] == [
            by_id[first]["plan"][0]["arguments"],
            by_id[second]["plan"][0]["arguments"],
        ]
        assert pair["how"] == "combine" and pair["family"] == first
        assert pair["related"] == [second]  # the split keeps both questions on one side
        assert offered[pair["id"]] == specs[first]

    many = [weather(f"w{k}", f"city {k}") for k in range(12)]
    made, _ = build.parallel_pairs(many, {t["id"]: [] for t in many}, count=50, seed=0)
    assert len(made) == build.PAIRS_PER_FUNCTION  # one function does not take over the set


def test_among_others_offers_the_needed_function_with_unrelated_ones_and_keeps_the_plan():
    build = load("examples/bfcl-smollm2/build.py")
    tasks = [
        task("a", "get_weather"),
        task("b", "weather_forecast"),  # shares "weather" with a: never offered beside it
        task("c", "getStockPrice"),
        task("d", "calculate_bmi"),
        task("e", "convert_units"),
        task("f", "irrelevant", domain="live_irrelevance") | {"plan": None},
    ]
    tasks[4]["tools"] = ["convert_units", "get_weather"]  # offers two: not a one-function task
    for t in tasks[:5]:
        t["plan"][0]["arguments"] = {"q": t["id"]}
    specs = {t["id"]: [f"spec of {name}" for name in t["tools"]] for t in tasks}
    made, offered = build.among_others(tasks, specs, count=10, seed=0)

    assert {m["id"] for m in made} == {"a-among", "b-among", "c-among", "d-among"}
    for among in made:
        original = next(t for t in tasks if f"{t['id']}-among" == among["id"])
        needed = original["tools"][0]
        assert among["plan"] == original["plan"] and among["question"] == original["question"]
        assert among["family"] == original["family"] and among["parents"] == [original["id"]]
        assert needed in among["tools"] and 2 <= len(among["tools"]) <= 4
        assert len(set(among["tools"])) == len(among["tools"])
        assert offered[among["id"]] == [f"spec of {name}" for name in among["tools"]]
        others = set(among["tools"]) - {needed}
        assert not others & {"convert_units", "irrelevant"}
        if needed in ("get_weather", "weather_forecast"):
            assert not others & {"get_weather", "weather_forecast"}
    # the needed function is not always first
    assert {among["tools"].index(among["plan"][0]["name"]) for among in made} != {0}


def test_variations_change_a_value_in_question_and_plan_alike_or_are_not_made():
    build = load("examples/bfcl-smollm2/build.py")

    def with_plan(ident, question, arguments):
        return task(ident, "book") | {
            "question": question,
            "plan": [{"name": "book", "arguments": arguments}],
        }

    tasks = [
        with_plan("a", "Book 3 seats for 2024-05-01", {"seats": 3, "date": "2024-05-01"}),
        with_plan("b", "Set the volume to 20", {"volume": 20}),
        # the 7 is not an argument: changing it would leave the plan stale
        with_plan("c", "Order 7 pizzas", {"item": "pizza"}),
        task("d", "none") | {"plan": None, "question": "What is 2 + 2?"},
    ]
    specs = {t["id"]: [f"spec of {t['id']}"] for t in tasks}
    made, offered = build.variations(tasks, specs, count=10, seed=0)

    assert sorted(m["parents"][0] for m in made) == ["a", "b"]
    for varied in made:
        original = next(t for t in tasks if t["id"] == varied["parents"][0])
        assert varied["question"] != original["question"]
        assert varied["family"] == original["family"] and varied["tools"] == original["tools"]
        assert offered[varied["id"]] == specs[original["id"]]
        for value in varied["plan"][0]["arguments"].values():
            assert str(value) in varied["question"]
