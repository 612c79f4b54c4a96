"""Tool calls that parse and fit the offered functions: a local model's token is refused where
it would make the body of a `<tool_call>` something no JSON parser accepts, or a call that
no offered function takes.

A small model writes mostly right calls with slips no parser forgives: a third closing brace
after the object is complete (`}}}` is one token), a Python tuple or expression as a value
(`(3, 4)`, `5 * 60`), a stray quote after a number. It also names functions nobody offered,
leaves out required arguments, invents argument names, and writes `"1789"` for an integer.
Each is a failed call. Decoding with a grammar (what servers call structured outputs or
guided decoding) keeps the reply inside the language of valid calls from the opener on: where
the model's own choice would leave it, the most likely token that does not is taken instead
(greedy), or the draw is repeated without the refused token (sampled). Nothing changes outside
a call, where the model's call is already valid, or where no token among the `TOP` likeliest
fits (the guard then lets go of that call).

The language, checked byte by byte: JSON with an object at the top (`fcsft.models.jsonprefix`)
and, where the request offered functions (`CallSchema`), the call object of the tagged format:
its first key `"name"`, whose value is an offered function's name; then `"arguments"`, an
object whose keys are that function's parameters, each at most once, and which closes only
once every required one is written; a parameter's value starts as its declared type allows
(an integer has no fraction or exponent), a string parameter with an enum of strings takes one
of them; `"id"` is allowed after the name. What lies deeper (an array's items, a nested
object) is only held to JSON. Names, keys and enum values are written without escapes.

A call ends where the object closes; the bytes after it may only be white space up to the `<`
of `</tool_call>`, where the guard lets go until the next opener. Token texts come from the
tokenizer as bytes (byte-level BPE tokens map back to their exact bytes, so a multi-byte
character split over tokens is checked correctly); special tokens (end of turn) are refused
inside an unfinished call.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from fcsft.formats.tagged import CALL_OPEN
from fcsft.models.jsonprefix import LEFT, START, State, step

OPEN = CALL_OPEN.encode()
TOP = 64  # candidates tried, likeliest first, before the model's own choice is kept

# the first byte of a value of each JSON schema type
_FIRST_BYTES = {
    "string": b'"',
    "object": b"{",
    "array": b"[",
    "boolean": b"tf",
    "null": b"n",
    "integer": b"-0123456789",
    "number": b"-0123456789",
}
_TOP_KEYS = (b"arguments", b"id")  # after "name", each at most once
_STRING_MODES = ("string", "escape", "hex")


class Call(NamedTuple):
    """Where a call's bytes stand: the JSON state and what the schema needs to know."""

    json: State
    top: bytes = b""  # the last top-level key written
    name: bytes | None = None  # the function the call names, once its name is complete
    tops: frozenset[bytes] = frozenset()  # top-level keys written
    arg: bytes = b""  # the last argument written
    args: frozenset[bytes] = frozenset()  # arguments written
    text: bytes = b""  # the name, key or enum value being written


CALL_START = Call(START)


@dataclass(frozen=True)
class Function:
    """An offered function as the guard checks it: its parameters (None: any keys), the
    required ones, and per parameter the JSON types its value may have and its enum's strings,
    where the schema gives them in a form the guard checks (read once, not per byte)."""

    parameters: tuple[bytes, ...] | None
    required: frozenset[bytes] = frozenset()
    types: dict[bytes, frozenset[str]] = field(default_factory=dict)
    enums: dict[bytes, list[bytes]] = field(default_factory=dict)


def _unescaped(text: str) -> bool:
    """Whether JSON writes `text` as it is (the guard refuses escapes where it checks text)."""
    return json.dumps(text, ensure_ascii=False)[1:-1] == text


def _read_function(parameters: Any) -> Function:
    """A function's `parameters` JSON schema as the guard checks it."""
    properties = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(properties, dict) or not all(_unescaped(k) for k in properties):
        return Function(None)
    types, enums = {}, {}
    for key, schema in properties.items():
        schema = schema if isinstance(schema, dict) else {}
        declared = schema.get("type")
        listed = [declared] if isinstance(declared, str) else declared
        if isinstance(listed, list) and listed and set(listed) <= set(_FIRST_BYTES):
            types[key.encode()] = frozenset(listed)
        enum = schema.get("enum")
        strings = isinstance(enum, list) and enum and all(isinstance(v, str) for v in enum)
        if strings and all(_unescaped(v) for v in enum):
            enums[key.encode()] = [v.encode() for v in enum]
    required = parameters.get("required")
    listed = required if isinstance(required, list) else []
    names = tuple(k.encode() for k in properties)
    needed = frozenset(r.encode() for r in listed if isinstance(r, str)) & set(names)
    return Function(names, needed, types, enums)


class CallSchema:
    """The functions a request offered (OpenAI `tools`), as the guard checks calls to them."""

    def __init__(self, tools: Sequence[dict[str, Any]]):
        self.functions: dict[bytes, Function] = {}
        for tool in tools:
            spec = tool.get("function", tool) if isinstance(tool, dict) else None
            if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                continue
            self.functions[spec["name"].encode()] = _read_function(spec.get("parameters"))
        if not all(_unescaped(name.decode()) for name in self.functions):
            self.functions = {}

    def step(self, call: Call, byte: int) -> Call | None:
        """The call's state after one more byte, or None where no valid call has this prefix."""
        before = call.json
        after = step(before, byte)
        if after is None:
            return None
        if not self.functions:  # nothing offered: JSON alone
            return call._replace(json=after)
        return self._check(call, before, after, byte)

    def _check(self, call: Call, before: State, after: State, byte: int) -> Call | None:
        stack, mode, _ = before
        new_stack, new_mode, part = after
        call = call._replace(json=after)
        if mode == "value" and new_mode != "value" and not self._starts(call, stack, byte):
            return None  # a value starts (a string's opening quote too)
        if new_mode in _STRING_MODES or mode in _STRING_MODES:
            return self._string(call, before, after, byte)
        if new_mode == "number" and part in ("dot", "e") and self._is_integer(call, stack):
            return None
        if new_mode == "key" and self._options(call, new_stack, "key") == []:
            return None  # a comma, but no key is left to write
        if len(new_stack) < len(stack) and not self._may_close(call, stack):
            return None
        return call

    def _string(self, call: Call, before: State, after: State, byte: int) -> Call | None:
        """A byte that opens, continues or closes a string: the text of a name, key or enum
        value is held to what it may be."""
        stack, mode, detail = before
        if mode not in _STRING_MODES:  # the opening quote (a value's was checked by _check)
            if after[2] == "key" and self._options(call, stack, "key") == []:
                return None
            return call._replace(text=b"")
        kind = detail[0] if mode == "hex" else detail
        options = self._options(call, stack, kind)
        if options is None:
            return call
        if mode != "string" or after[1] in ("escape", "hex"):
            return None  # no escapes in a checked text
        if after[1] == "string":  # one more byte of the text
            text = call.text + bytes([byte])
            return call._replace(text=text) if any(o.startswith(text) for o in options) else None
        if call.text not in options:  # the closing quote
            return None
        if kind == "key" and stack == "{":
            return call._replace(top=call.text, tops=call.tops | {call.text})
        if kind == "key":
            return call._replace(arg=call.text, args=call.args | {call.text})
        if call.top == b"name":
            return call._replace(name=call.text)
        return call

    def _options(self, call: Call, stack: str, kind: str) -> list[bytes] | None:
        """What the string being written may be, or None where it is free."""
        if stack == "{":
            if kind == "key":
                return [b"name"] if not call.tops else [k for k in _TOP_KEYS if k not in call.tops]
            return list(self.functions) if call.top == b"name" else None
        function = self._function(call)
        if stack != "{{" or call.top != b"arguments" or function is None:
            return None
        if function.parameters is None:
            return None
        if kind == "key":
            return [k for k in function.parameters if k not in call.args]
        return function.enums.get(call.arg)

    def _function(self, call: Call) -> Function | None:
        return self.functions.get(call.name) if call.name is not None else None

    def _types(self, call: Call) -> frozenset[str] | None:
        """The JSON types the current argument's value may have, or None where any."""
        function = self._function(call)
        return None if function is None else function.types.get(call.arg)

    def _is_integer(self, call: Call, stack: str) -> bool:
        """Whether a number at `stack` is an integer argument's value."""
        if not _typed(call, stack):
            return False
        types = self._types(call)
        return types is not None and "number" not in types and "integer" in types

    def _starts(self, call: Call, stack: str, byte: int) -> bool:
        """Whether a value at `stack` may start with `byte`."""
        if stack == "{" and call.top == b"name":
            return byte == ord('"')
        if stack == "{" and call.top == b"arguments":
            return byte == ord("{")
        if not _typed(call, stack):
            return True
        types = self._types(call)
        return types is None or any(byte in _FIRST_BYTES[t] for t in types)

    def _may_close(self, call: Call, stack: str) -> bool:
        """Whether the container at the end of `stack` may close here."""
        if stack == "{":
            return {b"name", b"arguments"} <= call.tops
        if stack == "{{" and call.top == b"arguments":
            function = self._function(call)
            return function is None or function.required <= call.args
        return True


def _typed(call: Call, stack: str) -> bool:
    """Whether a value at `stack` is an argument's own value (not an item deeper down)."""
    return stack == "{{" and call.top == b"arguments"


def feed(schema: CallSchema, call: Call, piece: bytes) -> tuple[Call | None, bytes]:
    """The call's state after a token's bytes, or None if they leave the valid calls; and the
    bytes left over after the call was let go of (they belong to the text outside it)."""
    for at, byte in enumerate(piece):
        next_call = schema.step(call, byte)
        if next_call is None:
            return None, b""
        if next_call.json[1] == LEFT:
            return next_call, piece[at:]
        call = next_call
    return call, b""


def _byte_level_chars() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character to byte: printable Latin-1 bytes stand for
    themselves, the other 68 bytes (controls, space, ...) for characters from U+0100 on, in
    byte order."""
    kept = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    moved = [b for b in range(256) if b not in kept]
    return {chr(b): b for b in kept} | {chr(0x100 + k): b for k, b in enumerate(moved)}


def token_pieces(tokenizer: Any) -> list[bytes | None]:
    """Each token id's bytes (None for a special token). A byte-level BPE vocabulary (GPT-2's
    byte-to-character map, as SmolLM2, Llama 3 and Qwen use) maps back exactly; any other is
    decoded token by token, which is right for whole characters."""
    to_byte = _byte_level_chars()
    special = set(tokenizer.all_special_ids)
    names = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    byte_level = any(isinstance(n, str) and n.startswith("Ġ") for n in names)
    pieces: list[bytes | None] = []
    for index, name in enumerate(names):
        if index in special or name is None:
            pieces.append(None)
        elif byte_level and all(char in to_byte for char in name):
            pieces.append(bytes(to_byte[char] for char in name))
        else:
            pieces.append(tokenizer.decode([index]).encode())
    return pieces


class CallGuard:
    """Per row of a batch: outside a call (looking for the opener in the newest bytes) or
    inside one (its `Call` state), with the functions that row's request offered."""

    def __init__(self, pieces: Sequence[bytes | None], schemas: Sequence[CallSchema]):
        self.pieces = pieces
        self.schemas = list(schemas)
        rows = len(self.schemas)
        self.states: list[Call | None] = [None] * rows
        self.tails = [b""] * rows
        self.refused = [0] * rows  # tokens the guard replaced, per row

    def _after(self, row: int, token: int) -> tuple[Call | None, bytes] | None:
        """(state, tail) after `token`, or None where the guard refuses it."""
        piece = self.pieces[token] if token < len(self.pieces) else None
        state, tail = self.states[row], self.tails[row]
        while True:
            if state is not None:  # inside a call
                if piece is None:
                    return None if state.json[1] != "done" else (None, b"")
                state, piece = feed(self.schemas[row], state, piece)
                if state is None:
                    return None
                if state.json[1] != LEFT:
                    return state, b""
                state, tail = None, b""
            if piece is None:
                return None, b""
            text = tail + piece
            at = text.find(OPEN)
            if at < 0:
                return None, text[-(len(OPEN) - 1) :]
            state, piece = CALL_START, text[at + len(OPEN) :]

    def refuses(self, row: int, token: int) -> bool:
        return self.states[row] is not None and self._after(row, token) is None

    def advance(self, row: int, token: int) -> None:
        """Take `token` as written (a refused one too: the guard found nothing better and lets
        go of this call)."""
        after = self._after(row, token)
        self.states[row], self.tails[row] = after if after is not None else (None, b"")
