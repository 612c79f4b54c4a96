"""The call guard's schema: a call names an offered function and gives it its parameters, in
the declared types, with every required one; checked byte by byte against texts whose fate a
plain reference (json.loads and the schema read directly) decides."""

from __future__ import annotations

import json
import random

import pytest

from fcsft.models.guard import CALL_START, CallSchema

WEATHER = {
    "name": "weather_get",
    "parameters": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "days": {"type": "integer"},
            "scale": {"type": "number"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "hourly": {"type": "boolean"},
            "fields": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object"},
            "note": {"type": ["string", "null"]},
        },
        "required": ["city", "days"],
    },
}
WEATHER_LONG = {
    "name": "weather_get_history",
    "parameters": {"type": "object", "properties": {"when": {}}, "required": []},
}
FREE = {"name": "free", "parameters": {"type": "object"}}  # no properties: any keys
NONE = {"name": "ping", "parameters": {"type": "object", "properties": {}}}
TOOLS = [{"type": "function", "function": f} for f in (WEATHER, WEATHER_LONG, FREE, NONE)]
SCHEMA = CallSchema(TOOLS)


def run(text: str, schema: CallSchema = SCHEMA):
    """The call state after `text`, or the offset of the byte where it was refused."""
    call = CALL_START
    for at, byte in enumerate(text.encode()):
        call = schema.step(call, byte)
        if call is None:
            return at
    return call


VALID = [
    '{"name": "weather_get", "arguments": {"city": "Oslo", "days": 3}}',
    '{"name":"weather_get","arguments":{"days":-2,"city":"\\u00c5s\\n","scale":1.5e3,'
    '"unit":"fahrenheit","hourly":false,"fields":[1,{"x":null}],"extra":{"any":[]},'
    '"note":null}}',
    '{ "name" : "weather_get" , "arguments" : { "city" : "x" , "days" : 0 } , "id" : 7 }',
    '{"name": "weather_get_history", "arguments": {}}',
    '{"name": "weather_get_history", "arguments": {"when": [1, "x"]}}',
    '{"name": "free", "arguments": {"anything": 1, "else": "y"}}',
    '{"name": "ping", "arguments": {}}',
    '{"name": "ping", "id": "call_1", "arguments": {}}',
]


@pytest.mark.parametrize("text", VALID)
def test_every_prefix_of_a_valid_call_is_allowed_and_the_whole_one_is_done(text):
    for end in range(len(text)):
        assert not isinstance(run(text[:end]), int), text[:end]
    assert run(text).json[1] == "done"


# each call is refused at the byte after the `|`
REFUSED = [
    '{"name": "weather_|set", "arguments": {}}',  # a name nobody offered
    '{"name": "weather|\\u005fget"}',  # an escape in a name
    '{"name": "weather_ge|", "arguments": {}}',  # only the start of offered names
    '{"|arguments": {}, "name": "ping"}',  # the name comes first
    '{"name": |7}',  # a name is a string
    '{"name": "ping", "arguments": |[]}',  # arguments are an object
    '{"name": "ping"|}',  # a call without arguments
    '{"name": "ping", "arguments": {}, "|name": "ping"}',  # a key twice
    '{"name": "ping", "arguments": {}, "id": 1|, ',  # no key is left to write
    '{"name": "ping", "arguments": {|"x": 1}}',  # ping takes no parameter
    '{"name": "weather_get", "arguments": {"city": "a", "|country": "b"',  # an unknown one
    '{"name": "weather_get", "arguments": {"city": "a", "|city": "b"',  # one twice
    '{"name": "weather_get", "arguments": {"city": "Oslo"|}}',  # days is required
    '{"name": "weather_get", "arguments": {"days": |"3"',  # an integer is not a string
    '{"name": "weather_get", "arguments": {"days": 3|.5',  # nor a fraction
    '{"name": "weather_get", "arguments": {"days": 3|e2',  # nor an exponent
    '{"name": "weather_get", "arguments": {"city": |5',  # a string is not a number
    '{"name": "weather_get", "arguments": {"hourly": |1',  # a boolean is true or false
    '{"name": "weather_get", "arguments": {"hourly": |null',  # and not null
    '{"name": "weather_get", "arguments": {"fields": |"a"',  # an array is an array
    '{"name": "weather_get", "arguments": {"extra": |[',  # an object is an object
    '{"name": "weather_get", "arguments": {"unit": "|kelvin"',  # an enum's values only
    '{"name": "weather_get", "arguments": {"unit": "celsius| "',
    '{"name": "weather_get", "arguments": {"unit": "c|\\u0065lsius"',
    '{"name": "weather_get", "arguments": {"note": |4',  # string or null
]


@pytest.mark.parametrize("marked", REFUSED)
def test_each_call_no_offered_function_takes_is_refused_where_it_goes_wrong(marked):
    at = marked.index("|")
    text = marked.replace("|", "", 1)
    assert run(text) == len(text[:at].encode())


def test_without_offered_functions_the_guard_holds_calls_to_json_alone():
    for schema in (CallSchema([]), CallSchema([{"type": "function", "function": {"x": 1}}])):
        assert not schema.functions
        assert run('{"k": [1, "two"], "name": 3}', schema).json[1] == "done"
        assert isinstance(run('{"k": (1)}', schema), int)


def test_a_schema_whose_names_need_escapes_holds_calls_to_json_alone():
    odd = CallSchema([{"type": "function", "function": {"name": 'say "hi"'}}])
    assert not odd.functions


# --------------------------------------------------------- random calls against a reference

TYPES = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "array": lambda v: isinstance(v, list),
    "object": lambda v: isinstance(v, dict),
    "null": lambda v: v is None,
}


def reference_valid(text: str) -> bool:
    """Whether `text` is a call of an offered function, read with json.loads and the schema
    itself (no byte-level state)."""
    try:
        pairs = json.loads(text, object_pairs_hook=lambda p: ("pairs", p))
    except ValueError:
        return False
    if not (isinstance(pairs, tuple) and pairs[0] == "pairs"):
        return False
    keys = [k for k, _ in pairs[1]]
    if not keys or keys[0] != "name" or len(set(keys)) != len(keys):
        return False
    if not set(keys) <= {"name", "arguments", "id"} or "arguments" not in keys:
        return False
    body = dict(pairs[1])
    functions = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
    if body["name"] not in functions:
        return False
    arguments = body["arguments"]
    if not (isinstance(arguments, tuple) and arguments[0] == "pairs"):
        return False
    names = [k for k, _ in arguments[1]]
    parameters = functions[body["name"]]
    properties = parameters.get("properties")
    if properties is None:  # no declared parameters: any object
        return True
    if (
        len(set(names)) != len(names)
        or not set(names) <= set(properties)
        or not set(parameters.get("required", [])) <= set(names)
    ):
        return False
    for name, value in arguments[1]:
        declared = properties[name].get("type")
        if declared is None:
            continue
        allowed = [declared] if isinstance(declared, str) else declared
        if isinstance(value, tuple):  # a nested object, as the pairs hook left it
            value = dict(value[1])
        if not any(TYPES[t](value) for t in allowed):
            return False
        if "enum" in properties[name] and value not in properties[name]["enum"]:
            return False
    return True


def random_call(rng: random.Random) -> str:
    """A call built from right and wrong parts: names, keys, values of every type."""
    name = rng.choice(["weather_get", "weather_get_history", "free", "ping", "weather", "pin"])
    keys = ["city", "days", "scale", "unit", "hourly", "fields", "extra", "note", "when", "x"]
    values = [
        '"Oslo"',
        '"celsius"',
        '"kelvin"',
        "3",
        "-0",
        "2.5",
        "1e2",
        "true",
        "null",
        '["a", 1]',
        '{"k": {"j": []}}',
        "{}",
        '"f\\u00e9"',
    ]
    arguments = ", ".join(
        f'"{rng.choice(keys)}": {rng.choice(values)}' for _ in range(rng.randint(0, 3))
    )
    parts = [f'"name": "{name}"', f'"arguments": {{{arguments}}}']
    if rng.random() < 0.2:
        parts.append(f'"id": {rng.choice(values)}')
    if rng.random() < 0.15:
        rng.shuffle(parts)
    if rng.random() < 0.1:
        parts.pop()
    return "{" + ", ".join(parts) + "}"


def test_the_guard_agrees_with_the_reference_on_random_calls():
    rng = random.Random(11)
    done = refused = 0
    for _ in range(6000):
        text = random_call(rng)
        state = run(text)
        finished = not isinstance(state, int) and state.json[1] == "done"
        assert finished == reference_valid(text), text
        done += finished
        refused += isinstance(state, int)
    assert done > 300 and refused > 3000  # both sides were exercised
