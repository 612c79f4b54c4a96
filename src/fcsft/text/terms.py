"""The concrete terms a question hinges on: numbers, dates, names and quoted strings.

A rewrite must keep them all (or it asks something else); a combination must keep those of
every part (or it dropped one); an answer must be supported by them (see validation).
"""

from __future__ import annotations

import re

_CODE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b|\b[A-Za-z]+\d[\w-]*\b")  # dates, FY2025, Q3
_NUMBER = re.compile(r"(?<![\w.-])[-+]?\$?\d[\d,]*(?:\.\d+)?%?(?![\w-])")
_QUOTED = re.compile(r"\"([^\"]{2,})\"|(?<!\w)'([^']{2,})'(?!\w)")
# Runs of capitalised words (Orrin Dynamics, Harbor Lane Foods), and all-caps tickers.
_NAME = re.compile(
    r"\b(?:[A-Z][a-zA-Z&-]*[a-z][a-zA-Z&-]*|[A-Z]{2,6})\b(?:\s+(?:[A-Z][a-zA-Z&-]+|of|&)\b)*"
)
_STOP = {
    "What",
    "Which",
    "Who",
    "When",
    "Where",
    "Why",
    "How",
    "Is",
    "Are",
    "Was",
    "Were",
    "Do",
    "Does",
    "Did",
    "Can",
    "Could",
    "Should",
    "Would",
    "Will",
    "The",
    "A",
    "An",
    "Compare",
    "Find",
    "Give",
    "Tell",
    "Show",
    "List",
    "Please",
    "Then",
    "And",
    "If",
    "In",
    "On",
    "For",
    "Calculate",
    "Compute",
    "Get",
    "Look",
    "Check",
    "Using",
    "Use",
    "Based",
    "After",
    "I",
    "Also",
    "From",
    "Of",
    "By",
    "To",
    "With",
    "Fetch",
    "Search",
    "Between",
}


def normalise_number(text: str) -> str:
    """`$1,234.50` and `1234.5` are the same number."""
    text = text.replace(",", "").replace("$", "").rstrip("%").lstrip("+")
    try:
        value = float(text)
    except ValueError:
        return text
    return f"{value:.10g}"


def numbers(text: str) -> set[str]:
    return {normalise_number(match.group(0)) for match in _NUMBER.finditer(text)}


def names(text: str, lower: bool = True) -> set[str]:
    found = set()
    for match in _NAME.finditer(text):
        words = match.group(0).split()
        while words and words[0] in _STOP:
            words = words[1:]
        while words and words[-1] in {"of", "&"}:
            words = words[:-1]
        if words:
            name = " ".join(words)
            found.add(name.lower() if lower else name)
    return found


def codes(text: str) -> set[str]:
    return {match.group(0).lower() for match in _CODE.finditer(text)}


def quoted(text: str) -> set[str]:
    return {(a or b).lower() for a, b in _QUOTED.findall(text)}


def key_terms(text: str) -> set[str]:
    """Numbers (normalised), names and quoted strings, lower-cased."""
    return numbers(text) | names(text) | quoted(text) | codes(text)


def missing_terms(source: str, candidate: str) -> set[str]:
    """Terms of `source` that `candidate` lost (a name may survive in any letter case)."""
    have_numbers = numbers(candidate)
    lowered = candidate.lower()
    lost = {n for n in numbers(source) if n not in have_numbers}
    lost |= {term for term in names(source) | quoted(source) | codes(source) if term not in lowered}
    return lost
