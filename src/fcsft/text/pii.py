"""Scrub personal data from mined questions.

Each match becomes a placeholder like `[EMAIL]`, so the question keeps its shape and the
count of what was scrubbed can be reported. Only shapes with a definition narrow enough for
financial text, which is dense with numbers, are matched:

    EMAIL    local@domain.tld
    IBAN     country code, two check digits and 11-30 letters or digits (groups of four may be
             spaced), accepted only when the ISO 13616 mod-97 check gives 1
    CARD     13-19 digits, spaces or dashes between, accepted only when the Luhn check passes
    ID       a US social security number, 123-45-6789
    IP       an IPv4 dotted quad (each part 0-255, not inside a longer dotted number) or an
             IPv6 address with `::` or all eight groups, as `ipaddress` parses them
    ACCOUNT  6-17 digits (single spaces or dashes between) right after "account", "acct" or
             "a/c", optionally followed by "number", "no.", "#", ":" or "is": an amount
             ("accounts for 12%", "account for 1,204.5") has separators or too few digits
    ADDRESS  a street address written number first: a house number of 1-5 digits that is not
             a year (19xx, 20xx: "in 2025 Harbor Lane Foods" is a company), one to three
             capitalised words and a street word (Street, St, Avenue, Rd, ...), as in
             "221 Baker Street" or "1600 Pennsylvania Ave"
    PHONE    9-15 digits with separators, a leading `+` or a bracketed area code (dates and
             amounts do not qualify)

Rules run in that order, so a longer shape (an IBAN, a card) is replaced before a shorter one
(a phone) could take part of it. `scrub` also takes a detector, a function that returns
`(start, end, kind)` spans, for what patterns cannot define (names, places):
`presidio_detector()` wraps Microsoft Presidio (`pip install 'fcsft[pii]'`).
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable

Span = tuple[int, int, str]
Detector = Callable[[str], list[Span]]

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
_CARD = re.compile(r"(?<![\w.,])\d(?:[ -]?\d){12,18}(?![\w.,]?\d)")
_ID = re.compile(r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])")  # US SSN shape
_IPV4 = re.compile(r"(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w]|\.\d)")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
_ACCOUNT = re.compile(
    r"\b(?:accounts?|acct|a/c)\.?(?:\s+(?:number|no\.?|#))?\s*(?:#|:|\s+is)?\s*"
    r"(?P<number>\d(?:[ -]?\d){5,16})(?![\w.,]?\d)",
    re.IGNORECASE,
)
_STREET_WORDS = (
    "Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|"
    "Terrace|Way|Parkway|Pkwy|Highway|Hwy|Square|Sq|Crescent|Close"
)
_ADDRESS = re.compile(
    rf"(?<![\w.,])(?!(?:19|20)\d\d\b)\d{{1,5}}[A-Za-z]?(?:\s+[A-Z][a-z]+){{1,3}}\s+(?:{_STREET_WORDS})\b\.?"
    r"(?:,?\s+(?:Apt|Suite|Unit|Flat)\.?\s*\w+)?"
)
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


def iban_checksum_ok(text: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 is 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(char, 36)) for char in rearranged)) % 97 == 1


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def _is_ipv6(text: str) -> bool:
    if "::" not in text and text.count(":") != 7:
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _is_phone(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    has_shape = text.startswith("+") or "(" in text or bool(re.search(r"[ .-]", text))
    return has_shape and 9 <= len(digits) <= 15


def _always(_: str) -> bool:
    return True


_RULES: list[tuple[str, re.Pattern[str], Callable[[str], bool]]] = [
    ("EMAIL", _EMAIL, _always),
    ("IBAN", _IBAN, iban_checksum_ok),
    ("CARD", _CARD, _is_card),
    ("ID", _ID, _always),
    ("IP", _IPV4, _is_ipv4),
    ("IP", _IPV6, _is_ipv6),
    ("ACCOUNT", _ACCOUNT, _always),
    ("ADDRESS", _ADDRESS, _always),
    ("PHONE", _PHONE, _is_phone),
]


def _replace_spans(text: str, spans: list[Span], found: Counter) -> str:
    """Replace non-overlapping spans (the earliest, then the longest, wins) by placeholders."""
    out, position = [], 0
    for start, end, kind in sorted(spans, key=lambda span: (span[0], -span[1])):
        if start < position or end <= start:
            continue
        out.append(text[position:start])
        out.append(f"[{kind}]")
        found[kind] += 1
        position = end
    out.append(text[position:])
    return "".join(out)


def scrub(text: str, detector: Detector | None = None) -> tuple[str, Counter]:
    """The text with personal data replaced, and how many of each kind were replaced."""
    found: Counter = Counter()
    for kind, pattern, accept in _RULES:
        spans = []
        for match in pattern.finditer(text):
            # ACCOUNT keeps its keyword ("account [ACCOUNT]"): only the number is personal.
            group = "number" if "number" in pattern.groupindex else 0
            if accept(match.group(group)):
                spans.append((match.start(group), match.end(group), kind))
        text = _replace_spans(text, spans, found)
    if detector is not None:
        spans = [span for span in detector(text) if not _inside_placeholder(text, span)]
        text = _replace_spans(text, spans, found)
    return text, found


def _inside_placeholder(text: str, span: Span) -> bool:
    """Whether a detector's span touches a placeholder a pattern already put in."""
    start, end, _ = span
    return any(
        match.start() < end and start < match.end() for match in re.finditer(r"\[[A-Z_]+\]", text)
    )


DETECTORS = ("patterns", "presidio")


def detector_for(name: str) -> Detector | None:
    """The detector `seeds.pii` names: none beyond the patterns, or Presidio's."""
    if name == "patterns":
        return None
    if name == "presidio":
        return presidio_detector()
    from fcsft.errors import UserError

    raise UserError(f"unknown PII detector {name!r}; known: {', '.join(DETECTORS)}")


def presidio_detector(language: str = "en", threshold: float = 0.5) -> Detector:
    """A detector backed by Presidio's analyzer (names, locations, ...); needs `fcsft[pii]`
    and a spaCy model for `language` (Presidio names the one to download when it is missing)."""
    from fcsft.errors import require

    analyzer = require("presidio_analyzer", "pii").AnalyzerEngine()

    def detect(text: str) -> list[Span]:
        results = analyzer.analyze(text=text, language=language, score_threshold=threshold)
        return [(r.start, r.end, r.entity_type) for r in results]

    return detect
