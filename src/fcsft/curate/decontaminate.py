"""Decontamination: no training item may be, or nearly be, an evaluation item.

A training item matches an evaluation item, in this order of precedence, when

    exact      its question equals one of the item's questions after normalisation (case,
               punctuation and spacing ignored; fcsft.text.near), whatever its length
    near       the two questions' character 5-gram sets have a Jaccard similarity of at least
               `near` (0.7: "Tell me a joke about otters please!" against "Tell me a joke about
               otters." is 0.77; "What is the capital of Spain?" against "... of France?" is
               0.63 and passes)
    ngram      the questions share a word `n`-gram (8 by default): a long question quoted
               inside a longer one
    function   it offers a function with the same name (case, "." and "_" alike) as one the
               item offers, and the shorter of the two descriptions is nearly all inside the
               other (at least `near` of its character 5-grams; a note appended to one side,
               such as BFCL's "Python 3 syntax", does not hide it): the item's own schema,
               learnt before the test

Every match names the evaluation set, the item's id and text, the rule and its similarity, so
that every removed training item can be listed beside the item it matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from fcsft.text.near import NearTexts, char_grams

_WORD = re.compile(r"\w+")


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


@dataclass(frozen=True)
class EvalItem:
    """What an evaluation item brings: its id, its questions, its functions (name,
    description)."""

    id: str
    questions: tuple[str, ...]
    functions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Match:
    """The evaluation item a training text matched, and how."""

    set: str
    id: str
    text: str
    how: str
    score: float

    def reason(self) -> str:
        return f"{self.how} match ({self.score:.2f}) with {self.set} item {self.id}"

    def to_json(self) -> dict[str, str | float]:
        return {
            "set": self.set,
            "match_id": self.id,
            "match_text": self.text,
            "how": self.how,
            "score": round(self.score, 4),
        }


def function_key(name: str) -> str:
    return name.lower().replace(".", "_")


@dataclass
class Contamination:
    """Every evaluation set's items, indexed for the four rules."""

    n: int = 8
    near: float = 0.7
    sizes: dict[str, int] = field(default_factory=dict)
    """How many items each evaluation set brought, by name, in the order they were added."""

    def __post_init__(self) -> None:
        self.texts = NearTexts(self.near)
        self.owner: dict[tuple[str, ...], str] = {}
        self.refs: dict[str, tuple[str, str, str]] = {}  # key -> (set, item id, text)
        self.functions: dict[str, list[tuple[set[str], str]]] = {}  # name -> [(grams, key)]

    def add(self, name: str, items: Iterable[EvalItem]) -> None:
        self.sizes.setdefault(name, 0)
        for item in items:
            self.sizes[name] += 1
            for number, question in enumerate(item.questions):
                key = f"{name}\t{item.id}\t{number}"
                self.refs[key] = (name, item.id, question)
                self.texts.add(key, question)
                for gram in ngrams(question, self.n):
                    self.owner.setdefault(gram, key)
            for number, (function, description) in enumerate(item.functions):
                key = f"{name}\t{item.id}\tf{number}"
                self.refs[key] = (name, item.id, f"{function}: {description}")
                self.functions.setdefault(function_key(function), []).append(
                    (char_grams(description), key)
                )

    def _match(self, key: str, how: str, score: float) -> Match:
        name, ident, text = self.refs[key]
        return Match(name, ident, text, how, score)

    def match(self, question: str, functions: Iterable[tuple[str, str]] = ()) -> Match | None:
        """The first rule (see the module docstring) that ties this training item to an
        evaluation item, or None."""
        found = self.texts.match(question)
        if found is not None:
            key, score = found
            return self._match(key, "exact" if score == 1.0 else "near", score)
        for gram in ngrams(question, self.n):
            if gram in self.owner:
                return self._match(self.owner[gram], "ngram", 1.0)
        for function, description in functions:
            grams = char_grams(description)
            for theirs, key in self.functions.get(function_key(function), ()):
                score = _containment(grams, theirs)
                if score >= self.near:
                    return self._match(key, "function", score)
        return None


def _containment(first: set[str], second: set[str]) -> float:
    """How much of the smaller set is in the other (1.0 for two empty descriptions)."""
    if not first or not second:
        return float(first == second)
    return len(first & second) / min(len(first), len(second))
