"""Expansion with a scripted model: rewrites, variations, combinations, lineage and resume."""

import json
import re

from fcsft.expand.pipeline import ExpandConfig, combine_stage, expand_stage, quota, tasks_stage
from fcsft.expand.vary import find_slots, vary
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.models.base import ChatResponse
from fcsft.records import Call, Seed, Task
from fcsft.runner.run import run_stage

POOLS = {"company": ["Orrin Dynamics", "Vellum Bank", "Harbor Lane Foods", "Kestrel Mining"]}
SEEDS = [
    Seed(
        id="s1",
        question="What was Orrin Dynamics revenue in fiscal 2025?",
        source="expert",
        plan=[Call(name="search", arguments={"query": "Orrin Dynamics revenue fiscal 2025"})],
    ),
    Seed(
        id="s2",
        question="Fetch the latest closing price of Vellum Bank.",
        source="log",
        plan=[Call(name="fetch", arguments={"url": "file://prices/vellum-bank.csv"})],
    ),
    Seed(id="s3", question="What is 15% of 240?", source="log", tags=["no_tool"]),
]


class Scripted:
    """Answers rewrite and combine prompts the way a good, then a sloppy, teacher would."""

    def __init__(self):
        self.prompts = []

    async def chat(self, request):
        prompt = request.messages[-1]["content"]
        self.prompts.append(prompt)
        if prompt.startswith("Rewrite"):
            question = re.search(r"Question: (.*)", prompt).group(1)
            replies = [
                f"Could you tell me: {question[0].lower()}{question[1:]}",  # fine
                question.replace("?", " ?"),  # near-copy
                re.sub(r"\d+", "1999", question, count=1) + " please",  # changed a number
            ]
            text = json.dumps(replies) if "15%" not in prompt else "Sure! 15% of 240 is 36."
            return ChatResponse(message={"content": text}, prompt_tokens=20, completion_tokens=30)
        parts = re.findall(r"Part \d: (.*)", prompt)
        if "Harbor Lane" in prompt:  # the variation s1~v1: its combinations are sloppy
            text = "Question: Something vague about companies"  # loses every part
        else:
            text = (
                "First answer this: " + parts[0] + " Then use that result: " + " ".join(parts[1:])
            )
        return ChatResponse(message={"content": text}, prompt_tokens=40, completion_tokens=25)


def lines(path):
    return list(read_jsonl(path))


def test_quota_is_additive_and_stable():
    total = sum(quota(1.5, f"seed-{i}") for i in range(2000))
    assert 2900 <= total <= 3100
    assert quota(2, "x") == 2 and quota(1.5, "same") == quota(1.5, "same")


def test_variation_updates_the_gold_plan_and_keeps_lineage():
    task = Task(
        id="t",
        family="t",
        question="Compare Orrin Dynamics and Vellum Bank on 2026-10-30.",
        plan=[
            Call(name="fetch", arguments={"url": "file://prices/orrin-dynamics.csv"}),
            Call(name="fetch", arguments={"url": "file://prices/vellum-bank.csv"}),
        ],
    )
    assert [s.kind for s in find_slots(task.question, POOLS)] == ["company", "company", "date"]
    variants = vary(task, 4, POOLS, seed=3)
    assert len(variants) == 4 and len({v.question for v in variants}) == 4
    for variant in variants:
        assert variant.family == "t" and variant.parents == ["t"] and variant.how == "vary"
        for company in POOLS["company"]:
            slug = company.lower().replace(" ", "-")
            in_plan = any(slug in c.arguments["url"] for c in variant.plan)
            assert in_plan == (company in variant.question)


def test_a_value_inside_a_word_is_no_slot_so_question_and_plan_change_together():
    task = Task(
        id="t",
        family="t",
        question="Book a flight on the 15th of March, 2024, for 3 people, seat 12C.",
        plan=[Call(name="book", arguments={"date": "15/03/2024", "people": 3, "seat": "12C"})],
    )
    # "15" in "15th" and "12" in "12C" cannot be replaced in the question, so they are no slots
    assert [(s.kind, s.value) for s in find_slots(task.question, {})] == [
        ("year", "2024"),
        ("number", "3"),
    ]
    for variant in vary(task, 6, {}, seed=1):
        (call,) = variant.plan
        assert call.arguments["date"].startswith("15/03/") and call.arguments["seat"] == "12C"
        assert call.arguments["date"][-4:] in variant.question
        assert f"for {call.arguments['people']} people" in variant.question


def test_variation_drops_a_python_plan_it_cannot_update():
    task = Task(
        id="t",
        family="t",
        question="Growth of Orrin Dynamics revenue in 2025?",
        plan=[
            Call(name="search", arguments={"query": "Orrin Dynamics revenue"}),
            Call(name="python", arguments={"code": "print(1482.6/1301.9-1)"}),
        ],
    )
    changed = [v for v in vary(task, 3, POOLS) if "Orrin" not in v.question]
    assert changed and all(v.plan is None for v in changed)
    numbers = Task(
        id="n",
        family="n",
        question="What is 15% of 240?",
        plan=[Call(name="python", arguments={"code": "print(240*15/100)"})],
    )
    for variant in vary(numbers, 2, POOLS):
        a, b = re.findall(r"\d+", variant.question)
        assert variant.plan[0].arguments["code"] == f"print({b}*{a}/100)"


def test_expand_combine_tasks_with_reasons_and_lineage(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    write_jsonl(seeds, (s.to_json() for s in SEEDS))
    config = ExpandConfig(rewrite=3, vary=1, combine=1, pools=POOLS, duplicate=0.95)
    model = Scripted()
    run = tmp_path / "run"
    stats = run_stage(expand_stage(config, model, "scripted"), run, [seeds])
    assert stats["reasons"] == {
        "rewrite.changed_meaning": 1,  # s1 asked about 1999 instead of 2025
        "rewrite.near_copy": 3,  # s1's and s2's echo, and s2's "... please" (no digit to change)
        "rewrite.parse": 1,
    }
    assert stats["counts"]["prompt_tokens"] == 60
    kept = [Task.from_json(o) for o in lines(run / "expand/out.jsonl")]
    assert {t.how for t in kept} == {"seed", "rewrite", "vary"}
    assert all(t.family == t.id.split("~")[0] for t in kept)
    assert next(t for t in kept if t.id == "s3").plan == []  # should-not-call: no calls is gold
    rejected = lines(run / "expand/rejected.jsonl")
    lost = next(r for r in rejected if r["reasons"][0]["rule"] == "rewrite.changed_meaning")
    assert (
        "lost" in lost["reasons"][0]["reason"] and "added ['1999']" in lost["reasons"][0]["reason"]
    )

    stats = run_stage(
        combine_stage(config, model, "scripted", len(SEEDS)), run, [run / "expand/out.jsonl"]
    )
    # combine=1 over 3 seeds asks for 3 groups; the two that take s1~v1 lose their parts
    assert (stats["in"], stats["out"], stats["rejected"]) == (3, 1, 2)
    assert stats["reasons"] == {"combine.lost_part": 2}
    assert stats["counts"]["prompt_tokens"] == 3 * 40
    by_id = {t.id: t for t in kept}
    combined = [Task.from_json(o) for o in lines(run / "combine/out.jsonl")]
    assert [t.id for t in combined] == ["s1~r1+s2"]
    for task in combined:
        parents = [by_id[p] for p in task.parents]
        assert task.id == "+".join(task.parents) and len(parents) in (2, 3)
        assert len({p.family for p in parents}) == len(parents)  # distinct families
        assert all(p.plan and not p.no_tool for p in parents)  # s3 has nothing to chain
        assert task.how == "combine" and task.family == parents[0].family
        assert task.source == parents[0].source
        assert task.plan == [c for p in parents for c in p.plan]  # dependency order
        assert set(task.related) == {p.family for p in parents[1:]} - {task.family}
        assert task.tools == sorted({name for p in parents for name in p.tools})
        assert all(p.question in task.question for p in parents)
    refused = lines(run / "combine/rejected.jsonl")
    assert sorted(r["id"] for r in refused) == ["s1~v1+s2", "s2~r1+s1~v1"]
    for entry in refused:
        (reason,) = entry["reasons"]
        assert reason["rule"] == "combine.lost_part" and "harbor" in reason["reason"].lower()
        assert entry["record"]["question"] == "Something vague about companies"

    stats = run_stage(
        tasks_stage(config, seeds), run, [run / "expand/out.jsonl", run / "combine/out.jsonl"]
    )
    report = stats["report"]
    assert report["by_how"]["seed"] == 3
    assert report["diversity_after"]["n"] == stats["out"]
    assert 0 < report["diversity_after"]["distinct_2gram_ratio"] <= 1


def test_expand_resumes_without_asking_twice(tmp_path):
    seeds = tmp_path / "seeds.jsonl"
    write_jsonl(seeds, (s.to_json() for s in SEEDS))
    config = ExpandConfig(rewrite=1, vary=1, combine=0, pools=POOLS)
    model = Scripted()
    stage = expand_stage(config, model, "scripted")
    run_stage(stage, tmp_path / "run", [seeds])
    out = (tmp_path / "run/expand/out.jsonl").read_bytes()
    ledger = tmp_path / "run/expand/_ledger.jsonl"
    ledger.write_text(ledger.read_text().splitlines(keepends=True)[0])  # crash after seed 1
    (tmp_path / "run/expand/_done.json").unlink()
    asked = len(model.prompts)
    run_stage(stage, tmp_path / "run", [seeds])
    assert (tmp_path / "run/expand/out.jsonl").read_bytes() == out
    assert len(model.prompts) == asked + 2  # only the two seeds not committed were asked again


def test_a_date_beside_a_named_weekday_moves_by_whole_weeks_and_others_by_days():
    """A question that names the weekday keeps it true: its date moves by one or two weeks;
    elsewhere a date moves by 1 to 10 days, some of them not whole weeks."""
    import datetime as dt

    def moves(question: str) -> set[int]:
        task = Task(id="t", family="t", question=question)
        variants = [v for seed in range(30) for v in vary(task, 2, {}, seed=seed)]
        assert variants
        dates = [find_slots(v.question, {})[0].value for v in variants]
        return {(dt.date.fromisoformat(d) - dt.date(2026, 11, 30)).days for d in dates}

    named = moves("Which meetings are on Monday, 2026-11-30?")
    assert named and all(days % 7 == 0 and 7 <= abs(days) <= 14 for days in named)
    plain = moves("Which meetings are on 2026-11-30?")
    assert any(days % 7 for days in plain) and all(1 <= abs(days) <= 10 for days in plain)
