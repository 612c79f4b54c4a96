"""The call guard: its JSON automaton against Python's json module, its handling of a reply's
calls token by token, and greedy decoding that takes the likeliest token it allows."""

from __future__ import annotations

import json
import random
import re

import pytest

from fcsft.models.guard import CALL_START, OPEN, CallGuard, CallSchema
from fcsft.models.jsonprefix import START, step

VALID = [
    '{"name": "f", "arguments": {}}',
    '{"name": "calc", "arguments": {"a": [1, 2.5, -3e2, 0.0], "b": {"c": null}, "d": true}}',
    '{ "name" : "s" , "arguments" : { "q" : "a \\"b\\" \\u00e9\\n", "e": [ ] , "f": false } }',
    '{"k": -0, "l": 1E+5, "m": [[], [{}], "x"]}',
    '{"name": "hand", "arguments": {"cards": ["10\u2665", "J\u2665"]}}',
]

# replies a tuned SmolLM2 wrote on dev, each one slip away from a call that parses
SLIPS = [
    '{"name": "convert", "arguments": {"amount": 150}}}',  # a third brace
    '{"name": "distance", "arguments": {"pointA": (3, 4)}}',  # a Python tuple
    '{"name": "velocity", "arguments": {"distance": 120, "duration": 5 * 60}}',  # arithmetic
    '{"name": "book", "arguments": {"children": 1"}}',  # a quote after a number
]


def run(text: str):
    """The state after `text`, or the offset of the byte where it was refused."""
    state = START
    for at, byte in enumerate(text.encode()):
        state = step(state, byte)
        if state is None:
            return at
    return state


def parses_as_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:
        return False


@pytest.mark.parametrize("text", VALID)
def test_every_prefix_of_a_valid_object_is_allowed_and_the_whole_one_is_done(text):
    assert parses_as_object(text)
    for end in range(len(text.encode())):
        assert not isinstance(run(text.encode()[:end].decode(errors="ignore")), int)
    assert run(text)[1] == "done"


@pytest.mark.parametrize("text", SLIPS)
def test_each_slip_is_refused_at_the_byte_that_breaks_the_json(text):
    assert not parses_as_object(text)
    at = run(text)
    assert isinstance(at, int)
    # everything before that byte is still the start of some object
    assert not isinstance(run(text[:at]), int)


def test_the_automaton_agrees_with_json_loads_on_random_texts():
    """Random texts over JSON's own alphabet: `done` exactly when json.loads reads an object,
    and a refused text is never the prefix of one that json.loads reads."""
    alphabet = [*'{}[]",:0123456789-.eE+ truefalsnl\\u', '"a"', '"k": ', "1", "{}", "[]"]
    rng = random.Random(7)
    agreed = refused = 0
    for _ in range(20000):
        text = "{" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        for closing in ("", "}", "]}", "}}"):
            whole = text + closing
            state = run(whole)
            done = not isinstance(state, int) and state[1] == "done"
            assert done == parses_as_object(whole), whole
            agreed += done
            refused += isinstance(state, int)
    assert agreed > 100 and refused > 1000  # both sides were exercised


def guard_over(pieces):
    return CallGuard([p.encode() if isinstance(p, str) else p for p in pieces], [CallSchema([])])


def test_the_guard_follows_a_reply_from_opener_to_closing_tag_and_the_next_call():
    pieces = [
        "Sure ",
        "<tool",
        "_call>",
        '{"name": "f", "arguments": {"x": 1',
        "}}",
        "}}}",
        "</tool_call>",
        "\n<tool_call>{",
        " (",
        None,
        '"a": 1}',
        "}",
    ]
    guard = guard_over(pieces)
    assert not guard.refuses(0, 0) and not guard.refuses(0, 5)  # outside a call: anything
    for token in (0, 1, 2):  # the opener split over tokens
        guard.advance(0, token)
    assert guard.states[0] == CALL_START
    guard.advance(0, 3)
    assert guard.refuses(0, 5)  # one brace too many
    assert guard.refuses(0, 9)  # end of turn inside an unfinished call
    assert not guard.refuses(0, 4)
    guard.advance(0, 4)
    assert guard.states[0].json[1] == "done"
    assert guard.refuses(0, 11) and not guard.refuses(0, 9)  # done: only the tag or the end
    guard.advance(0, 6)  # the closing tag lets go ...
    assert guard.states[0] is None
    guard.advance(0, 7)  # ... until the next opener, whose object starts in the same token
    assert guard.states[0] is not None and guard.states[0].json[1] == "first_key"
    assert guard.refuses(0, 8)
    assert not guard.refuses(0, 10)


def test_a_refused_token_taken_anyway_lets_go_of_the_call():
    guard = guard_over(["<tool_call>", "(", "{"])
    guard.advance(0, 0)
    assert guard.refuses(0, 1)
    guard.advance(0, 1)
    assert guard.states[0] is None and not guard.refuses(0, 1)


def test_a_multibyte_character_split_over_tokens_is_allowed_inside_a_string():
    heart = "\u2665".encode()
    guard = guard_over(["<tool_call>", '{"a": "', heart[:1], heart[1:], '"}'])
    for token in range(5):
        assert not guard.refuses(0, token)
        guard.advance(0, token)
    assert guard.states[0].json[1] == "done"


torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "a",
            "parameters": {
                "type": "object",
                "properties": {"k": {"type": "integer"}},
                "required": ["k"],
            },
        },
    }
]


@pytest.mark.parametrize("tools", [[], TOOLS], ids=["json", "schema"])
def test_greedy_decoding_takes_the_likeliest_token_the_guard_allows(tools):
    """Rows that start inside a call: at each step the token written is the argmax over the
    tokens the guard allows (checked by a plain loop over the whole vocabulary), the guard
    replaced some of the model's choices, and every row's text stays a valid call's prefix."""
    from fcsft.models.decode import decode
    from fcsft.models.local import StopTracker
    from tiny_llama import tiny_llama

    model = tiny_llama(vocab=96, seed=0, eos_token_id=1, pad_token_id=0)
    # JSON's bytes, some whole keys, and the single letters every real vocabulary has
    alphabet = [*'{}"a:1, )[]', '"k"', "(", "*", "null", '"name"', '"arguments"', '"a"', ".5"]
    alphabet += list("nmergutsk")
    pieces = [None, None] + [alphabet[t % len(alphabet)].encode() for t in range(2, 96)]
    rows = [[(k * 7 + j) % 90 + 3 for j in range(6)] for k in range(4)]

    def inside(count):
        guard = CallGuard(pieces, [CallSchema(tools) for _ in range(count)])
        guard.states = [CALL_START] * count
        return guard

    guard = inside(len(rows))
    limit = 12
    tracker = StopTracker([limit] * len(rows), [[] for _ in rows], {1}, lambda ids: "")
    got = decode(model, rows, tracker, pad_id=0, guard=guard)
    assert sum(guard.refused) > 0
    for row, made in zip(rows, got, strict=True):
        reference, ids, want = inside(1), list(row), []
        with torch.inference_mode():
            while len(want) < limit:
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1]
                order = logits.argsort(descending=True).tolist()
                token = next(t for t in order if not reference.refuses(0, t))
                reference.advance(0, token)
                want.append(token)
                ids.append(token)
                if token == 1:  # end of turn (allowed once the call is done)
                    break
        assert made == want
        text = b"".join(pieces[t] or b"" for t in made).decode()
        assert not isinstance(run(text), int)
        if tools:  # the one call the schema admits, written in this alphabet
            compact, head = "".join(text.split()), '{"name":"a","arguments":{"k":'
            if len(compact) <= len(head):
                assert head.startswith(compact)
            else:
                assert compact.startswith(head) and re.fullmatch(r"1+(}}?)?", compact[len(head) :])


def test_the_embedded_tokenizer_maps_tokens_back_to_their_bytes():
    """SmolLM2's byte-level vocabulary: the pieces of a text's tokens are its UTF-8 bytes."""
    from fcsft.models.guard import token_pieces

    transformers = pytest.importorskip("transformers")
    from fcsft.models.weights import model_folder

    try:
        folder = model_folder("smollm2")
    except Exception as exc:  # the embedded model is not installed here
        pytest.skip(f"no embedded model: {exc}")
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    pieces = token_pieces(tokenizer)
    text = '<tool_call>{"name": "hand", "arguments": {"cards": ["10\u2665", "J\u2665"]}}}'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert b"".join(pieces[i] for i in ids) == text.encode()
    assert pieces[tokenizer.eos_token_id] is None
    assert OPEN in text.encode()
