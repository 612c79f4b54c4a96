"""Tool calls that parse: a local model's token is refused where it would make the body of a
`<tool_call>` something no JSON parser accepts.

A small model writes mostly right calls with slips no parser forgives: a third closing brace
after the object is complete (`}}}` is one token), a Python tuple or expression as a value
(`(3, 4)`, `5 * 60`), a stray quote after a number. Each such reply is a parse failure, scored
as no call at all. Decoding with a grammar (what servers call structured outputs or guided
decoding) keeps the reply a valid JSON prefix from the opener on: where the model's own choice
would break it, the most likely token that does not is taken instead (greedy), or the draw is
repeated without the refused token (sampled). Nothing changes outside a call, in a call the
model writes valid JSON anyway, or where no token among the `TOP` likeliest fits.

The grammar is JSON's (RFC 8259) with an object at the top, checked byte by byte: `step` is a
pushdown automaton whose state is a small tuple, so each row carries its own and trying a
token costs a few byte steps. A call ends where the object closes; the bytes
after it may only be white space up to the `<` of `</tool_call>`, where the guard lets go until
the next opener. Token texts come from the tokenizer as bytes (byte-level BPE tokens map back
to their exact bytes, so a multi-byte character split over tokens is checked correctly);
special tokens (end of turn) are refused inside an unfinished call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fcsft.formats.tagged import CALL_OPEN

OPEN = CALL_OPEN.encode()
TOP = 64  # candidates tried, likeliest first, before the model's own choice is kept
WHITE = frozenset(b" \t\r\n")
DIGITS = frozenset(b"0123456789")
ESCAPES = frozenset(b'"\\/bfnrtu')
HEX = frozenset(b"0123456789abcdefABCDEF")
LITERALS = {ord("t"): b"rue", ord("f"): b"alse", ord("n"): b"ull"}

# A state is (stack, mode, detail): `stack` the open containers ("{" or "[" per level), `mode`
# what may come next, `detail` what the mode needs (string: key or value; number: its part).
State = tuple[str, str, Any]
START: State = ("", "top", None)
LEFT = "left"  # the mode after the call's object and the `<` that follows it


def _after_value(stack: str) -> State:
    return (stack, "after", None) if stack else ("", "done", None)


# the parts of a number after which it may end (`_number` gives the part after each byte)
_NUMBER_ENDS = frozenset({"zero", "int", "frac", "exp"})


def _number(part: str, byte: int) -> str | None:
    digit = byte in DIGITS
    if part == "minus":
        return "zero" if byte == ord("0") else "int" if digit else None
    if part == "int" and digit:
        return "int"
    if part in ("zero", "int"):
        return "dot" if byte == ord(".") else "e" if byte in b"eE" else None
    if part in ("dot", "frac"):
        return "frac" if digit else "e" if part == "frac" and byte in b"eE" else None
    if part == "e":
        return "sign" if byte in b"+-" else "exp" if digit else None
    if part in ("sign", "exp"):
        return "exp" if digit else None
    return None


def _value(stack: str, byte: int) -> State | None:
    """The state after the first byte of a value."""
    if byte == ord("{"):
        return (stack + "{", "first_key", None)
    if byte == ord("["):
        return (stack + "[", "first_item", None)
    if byte == ord('"'):
        return (stack, "string", "value")
    if byte == ord("-"):
        return (stack, "number", "minus")
    if byte in DIGITS:
        return (stack, "number", "zero" if byte == ord("0") else "int")
    if byte in LITERALS:
        return (stack, "literal", LITERALS[byte])
    return None


def step(state: State, byte: int) -> State | None:
    """The state after one more byte, or None where no JSON document has this prefix."""
    stack, mode, detail = state
    if mode == "string":
        if byte == ord('"'):
            return (stack, "colon", None) if detail == "key" else _after_value(stack)
        if byte == ord("\\"):
            return (stack, "escape", detail)
        return None if byte < 0x20 else state
    if mode == "escape":
        if byte not in ESCAPES:
            return None
        return (stack, "hex", (detail, 4)) if byte == ord("u") else (stack, "string", detail)
    if mode == "hex":
        kind, left = detail
        if byte not in HEX:
            return None
        return (stack, "string", kind) if left == 1 else (stack, "hex", (kind, left - 1))
    if mode == "number":
        part = _number(detail, byte)
        if part is not None:
            return (stack, "number", part)
        return step(_after_value(stack), byte) if detail in _NUMBER_ENDS else None
    if mode == "literal":
        if byte != detail[0]:
            return None
        return (stack, "literal", detail[1:]) if len(detail) > 1 else _after_value(stack)
    if byte in WHITE:
        return state
    if mode == "top":
        return ("{", "first_key", None) if byte == ord("{") else None
    if mode in ("first_key", "key"):
        if byte == ord('"'):
            return (stack, "string", "key")
        return _after_value(stack[:-1]) if mode == "first_key" and byte == ord("}") else None
    if mode == "colon":
        return (stack, "value", None) if byte == ord(":") else None
    if mode == "value":
        return _value(stack, byte)
    if mode == "first_item":
        return _after_value(stack[:-1]) if byte == ord("]") else _value(stack, byte)
    if mode == "after":
        closing = "}" if stack[-1] == "{" else "]"
        if byte == ord(closing):
            return _after_value(stack[:-1])
        if byte == ord(","):
            return (stack, "key", None) if stack[-1] == "{" else (stack, "value", None)
        return None
    if mode == "done":
        return ("", LEFT, None) if byte == ord("<") else None
    raise ValueError(f"unknown JSON state {mode!r}")


def feed(state: State, piece: bytes) -> tuple[State | None, bytes]:
    """The state after a token's bytes inside a call, or None if it breaks the JSON; and the
    bytes left over after the call was let go of (they belong to the text outside it)."""
    for at, byte in enumerate(piece):
        next_state = step(state, byte)
        if next_state is None:
            return None, b""
        if next_state[1] == LEFT:
            return next_state, piece[at:]
        state = next_state
    return state, b""


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
    inside one (its JSON state)."""

    def __init__(self, pieces: Sequence[bytes | None], rows: int):
        self.pieces = pieces
        self.states: list[State | None] = [None] * rows
        self.tails = [b""] * rows
        self.refused = [0] * rows  # tokens the guard replaced, per row

    def _after(self, row: int, token: int) -> tuple[State | None, bytes] | None:
        """(state, tail) after `token`, or None where the guard refuses it."""
        piece = self.pieces[token] if token < len(self.pieces) else None
        state, tail = self.states[row], self.tails[row]
        while True:
            if state is not None:  # inside a call
                if piece is None:
                    return None if state[1] != "done" else (None, b"")
                state, piece = feed(state, piece)
                if state is None:
                    return None
                if state[1] != LEFT:
                    return state, b""
                state, tail = None, b""
            if piece is None:
                return None, b""
            text = tail + piece
            at = text.find(OPEN)
            if at < 0:
                return None, text[-(len(OPEN) - 1) :]
            state, piece = START, text[at + len(OPEN) :]

    def refuses(self, row: int, token: int) -> bool:
        return self.states[row] is not None and self._after(row, token) is None

    def advance(self, row: int, token: int) -> None:
        """Take `token` as written (a refused one too: the guard found nothing better and lets
        go of this call)."""
        after = self._after(row, token)
        self.states[row], self.tails[row] = after if after is not None else (None, b"")
