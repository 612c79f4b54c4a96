"""Scrub personal data from mined questions: e-mail addresses, card numbers, ID numbers, phones.

Each match becomes a placeholder like `[EMAIL]`, so the question keeps its shape and the
count of what was scrubbed can be reported. Patterns are deliberately narrow where financial
text is dense with numbers: a phone needs separators or a leading `+` and 9–15 digits (dates
and amounts do not qualify), and a card number must pass the Luhn check.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"(?<![\w.,])\d(?:[ -]?\d){12,18}(?![\w.,]?\d)")
_ID = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")  # US SSN shape
_PHONE = re.compile(
    r"(?<![\w.,+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![\w.,]?\d)"
)


def _luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _is_card(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    has_shape = text.startswith("+") or "(" in text or bool(re.search(r"[ .-]", text))
    return has_shape and 9 <= len(digits) <= 15


_RULES: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
    ("EMAIL", _EMAIL, lambda _: True),
    ("CARD", _CARD, _is_card),
    ("ID", _ID, lambda _: True),
    ("PHONE", _PHONE, _is_phone),
]


def scrub(text: str) -> tuple[str, Counter]:
    """The text with personal data replaced, and how many of each kind were replaced."""
    found: Counter = Counter()
    for kind, pattern, accept in _RULES:

        def replace(match: re.Match[str], kind: str = kind, accept=accept) -> str:
            if not accept(match.group(0)):
                return match.group(0)
            found[kind] += 1
            return f"[{kind}]"

        text = pattern.sub(replace, text)
    return text, found
