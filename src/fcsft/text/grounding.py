"""Whether an answer's numbers, dates and names come from its sources (what the tools returned,
what the user said): the check validation applies to teacher answers and evaluation to the
answers of the model under test.

A number is grounded when it equals a source number after normalisation (`$1,234.50` is
`1234.5`), or is one rounded or rescaled (1.48 billion from 1,482.6 million: the source number
times 10^-9 ... 10^9, rounded to as many significant digits as the answer wrote), sign aside
("fell 10.96%" from -10.96). Small whole numbers (counts, ordinals) need no source.
"""

from __future__ import annotations

import math
import re

from fcsft.text.terms import codes, names, numbers

SCALES = (1e-9, 1e-6, 1e-3, 1.0, 1e3, 1e6, 1e9)
"""Factors by which an answer may restate a number (1.48 billion from 1,482.6 million)."""


def _significant(value: float, digits: int) -> float:
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def _digits(text: str) -> int:
    core = text.lstrip("-").replace(".", "").lstrip("0")
    return max(1, len(core.rstrip("0")) if "." not in text else len(core))


def number_grounded(number: str, known: set[str], small_integers: int) -> bool:
    """Whether a (normalised) number of the answer is one of the known numbers, perhaps
    rounded or rescaled; whole numbers up to `small_integers` always are (-1: none is)."""
    if number in known:
        return True
    try:
        value = float(number)
    except ValueError:
        return False
    if value.is_integer() and abs(value) <= small_integers:
        return True  # counts and ordinals: "the 2 companies", "3 steps"
    digits = _digits(number)
    for other in known:
        try:
            candidate = float(other)
        except ValueError:
            continue
        for scale in SCALES:
            # Signs are words as often as symbols: "fell 10.96%" grounds in "-10.96".
            if math.isclose(abs(_significant(candidate * scale, digits)), abs(value), rel_tol=1e-9):
                return True
    return False


def _only_opens_sentences(name: str, text: str) -> bool:
    if " " in name:
        return False
    spots = [m.start() for m in re.finditer(rf"\b{re.escape(name)}\b", text)]
    return all(re.fullmatch(r"(?:.*[.!?:]\s+)?", text[:spot], re.DOTALL) for spot in spots)


def answer_names(answer: str) -> list[str]:
    """The names an answer states, as written: acronyms (CEO, USD) and words that merely open
    a sentence ("About", "It") are vocabulary, not names."""
    return [
        name
        for name in sorted(names(answer, lower=False))
        if not name.isupper() and not _only_opens_sentences(name, answer)
    ]


def name_found(name: str, lowered: str) -> bool:
    """Whether a name shows in lower-cased text: any word of it longer than two letters, a
    possessive ('s) aside."""
    words = [re.sub(r"['’]s?$", "", w).lower() for w in name.split()]
    return any(len(w) > 2 and w in lowered for w in words)


def ungrounded(answer: str, source_text: str, small_integers: int) -> list[str]:
    """What of the answer is in no source: `number X`, `date X`, `name 'X'`."""
    lowered = source_text.lower()
    known = numbers(source_text)
    problems = [
        f"number {n}"
        for n in sorted(numbers(answer))
        if not number_grounded(n, known, small_integers)
    ]
    problems += [
        f"date {d}"
        for d in sorted(codes(answer))
        if d not in lowered and any(c.isdigit() for c in d)
    ]
    problems += [f"name {name!r}" for name in answer_names(answer) if not name_found(name, lowered)]
    return problems
