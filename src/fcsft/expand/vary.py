"""Parameter variation: the same question about another company, date or amount.

Slots are found from value pools in config (companies, cities, tickers...) and by shape (ISO
dates, years, plain numbers). A variation swaps one or two slots for new values, in the
question and in every string of the gold plan's arguments, including a value's slug form
(`Orrin Dynamics` -> `orrin-dynamics` in a file name). A `python` call whose code the swap did
not touch computed with the old data, so such a plan is dropped rather than left wrong.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from dataclasses import dataclass
from typing import Any

from fcsft.records import Call, Task

_DATE = re.compile(r"(?<!\d)\d{4}-\d{2}-\d{2}(?!\d)")
_WEEKDAY = re.compile(r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b", re.IGNORECASE)
_YEAR = re.compile(r"(?<!\d)(?:19|20)\d{2}(?!\d)")
_NUMBER = re.compile(r"(?<![\w.,])\d[\d,]*(?:\.\d+)?(?![\w,]*\d)")
# Where `replace_all` may change a value: not inside a word or a longer number. A slot is only
# taken where it can be, else "15" in "15th" would change in the plan but not in the question.
_BEFORE = r"[\w.]"
_AFTER = r"\w|\.\d"


@dataclass(frozen=True)
class Slot:
    kind: str  # a pool name, or date / year / number
    value: str
    start: int
    end: int


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def find_slots(text: str, pools: dict[str, list[str]]) -> list[Slot]:
    """Non-overlapping slots, pool values first, then dates, years and numbers."""
    slots: list[Slot] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= a or start >= b for a, b in taken)

    def add(kind: str, match: re.Match[str]) -> None:
        start, end = match.start(), match.end()
        bounded = not re.match(_BEFORE, text[start - 1 : start]) and not re.match(
            _AFTER, text[end:]
        )
        if bounded and free(start, end):
            slots.append(Slot(kind, match.group(0), start, end))
            taken.append((start, end))

    for kind, values in pools.items():
        for value in sorted(values, key=len, reverse=True):
            for match in re.finditer(rf"(?<!\w){re.escape(value)}(?!\w)", text, re.IGNORECASE):
                add(kind, match)
    for kind, pattern in (("date", _DATE), ("year", _YEAR), ("number", _NUMBER)):
        for match in pattern.finditer(text):
            add(kind, match)
    return sorted(slots, key=lambda slot: slot.start)


def new_value(
    slot: Slot,
    pools: dict[str, list[str]],
    rng: random.Random,
    avoid: set[str],
    same_weekday: bool = False,
) -> str | None:
    """A different value of the same kind, not one of `avoid` (lower-cased values in use). A
    date moves by 1 to 10 days, or by one or two weeks with `same_weekday` (the text names a
    weekday, which would otherwise no longer match the date)."""
    if slot.kind in pools:
        choices = [v for v in pools[slot.kind] if v.lower() not in avoid]
        return rng.choice(choices) if choices else None
    if slot.kind == "date":
        sign = rng.choice([-1, 1])
        days = 7 * rng.randint(1, 2) if same_weekday else rng.randint(1, 10)
        day = dt.date.fromisoformat(slot.value) + dt.timedelta(days=sign * days)
        return day.isoformat()
    if slot.kind == "year":
        return str(int(slot.value) + rng.choice([-3, -2, -1, 1, 2]))
    number = float(slot.value.replace(",", ""))
    decimals = len(slot.value.split(".")[1]) if "." in slot.value else 0
    changed = number * rng.choice([0.5, 0.75, 1.25, 1.5, 2, 3])
    text = f"{changed:,.{decimals}f}" if "," in slot.value else f"{changed:.{decimals}f}"
    return None if text == slot.value else text


def replace_all(value: Any, swaps: dict[str, str]) -> Any:
    """Apply swaps at once (no chains) to every string, and equal number, in a JSON value; in a
    string only where `_BEFORE` and `_AFTER` allow."""
    if isinstance(value, str):
        pattern = "|".join(re.escape(old) for old in sorted(swaps, key=len, reverse=True))
        lowered = {old.lower(): new for old, new in swaps.items()}
        return re.sub(
            rf"(?<!{_BEFORE})(?:{pattern})(?!{_AFTER})",
            lambda m: lowered[m.group(0).lower()],
            value,
            flags=re.IGNORECASE,
        )
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        for old, new in swaps.items():
            try:
                if float(old.replace(",", "")) == value:
                    number = float(new.replace(",", ""))
                    return int(number) if isinstance(value, int) and number.is_integer() else number
            except ValueError:
                continue
        return value
    if isinstance(value, list):
        return [replace_all(item, swaps) for item in value]
    if isinstance(value, dict):
        return {key: replace_all(item, swaps) for key, item in value.items()}
    return value


def vary(task: Task, count: int, pools: dict[str, list[str]], seed: int = 0) -> list[Task]:
    """Up to `count` variations of a task; fewer when it has too few slots to differ."""
    slots = find_slots(task.question, pools)
    if not slots:
        return []
    rng = random.Random(f"{seed}:{task.id}")
    weekday = any(_WEEKDAY.search(text) for text in (task.question, *task.followups))
    out: list[Task] = []
    questions = {task.question.lower()}
    for _ in range(count * 4):  # a few tries per wanted variation, then give up
        if len(out) == count:
            break
        chosen = rng.sample(slots, k=min(len(slots), rng.choice([1, 2])))
        swaps: dict[str, str] = {}
        in_use = {slot.value.lower() for slot in slots}
        for slot in chosen:
            value = new_value(slot, pools, rng, in_use, same_weekday=weekday)
            if value is not None:
                swaps[slot.value] = value
                in_use.add(value.lower())
        if not swaps:
            continue
        question = replace_all(task.question, swaps)
        if question.lower() in questions:
            continue
        questions.add(question.lower())
        out.append(_varied(task, question, swaps, len(out) + 1))
    return out


def _varied(task: Task, question: str, swaps: dict[str, str], number: int) -> Task:
    plan = None
    if task.plan is not None:
        all_swaps = swaps | {slug(old): slug(new) for old, new in swaps.items() if slug(old) != old}
        plan = [Call(name=c.name, arguments=replace_all(c.arguments, all_swaps)) for c in task.plan]
        stale = any(
            new.name == "python" and new.arguments == old.arguments
            for old, new in zip(task.plan, plan, strict=True)
        )
        plan = None if stale else plan
    return task.model_copy(
        update={
            "id": f"{task.id}~v{number}",
            "question": question,
            "followups": [replace_all(text, swaps) for text in task.followups],
            "how": "vary",
            "parents": [task.id],
            "plan": plan,
        }
    )
