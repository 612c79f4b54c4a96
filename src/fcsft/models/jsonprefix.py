"""JSON prefixes, byte by byte: `step` is a pushdown automaton for JSON (RFC 8259) with an
object at the top, whose state says whether the bytes so far can still be the start of one.

The state is a small tuple, so a caller can keep one per row and try a byte without committing
to it. After the object closes only white space may follow, then a `<` (the start of the tag
that ends a tool call), where the state's mode becomes `LEFT`.
"""

from __future__ import annotations

from typing import Any

WHITE = frozenset(b" \t\r\n")
DIGITS = frozenset(b"0123456789")
ESCAPES = frozenset(b'"\\/bfnrtu')
HEX = frozenset(b"0123456789abcdefABCDEF")
LITERALS = {ord("t"): b"rue", ord("f"): b"alse", ord("n"): b"ull"}

# A state is (stack, mode, detail): `stack` the open containers ("{" or "[" per level), `mode`
# what may come next, `detail` what the mode needs (string: key or value; number: its part).
State = tuple[str, str, Any]
START: State = ("", "top", None)
LEFT = "left"  # the mode after the object and the `<` that follows it


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
