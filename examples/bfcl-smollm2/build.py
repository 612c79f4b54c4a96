"""Training data for the proof experiment, built with fcsft's stages from BFCL's live categories.

    python examples/bfcl-smollm2/build.py [--run-dir runs/bfcl-smollm2] [--per-category N]

Tasks come from BFCL's live categories (user-contributed questions), never from the categories
the model is tested on (simple, multiple, parallel, irrelevance). The reference teacher runs
each task's gold calls against simulated tools (BFCL's functions cannot run here: each is a
`SimulatedTool`, whose results are schema-checked and cached, played by a deterministic
template instead of a model, since a 135M model rarely writes a valid JSON API result) and the
model writes the final answer; live_irrelevance questions are answered by the model itself
with the tools on offer and no call. Validation, curation (balance, general mix of the base
model's own answers to general prompts, dedup, decontamination against BFCL's test
categories, family split) and export are the pipeline's own stages, so every step resumes.
Writes RUN_DIR/export/train.openai.jsonl and RUN_DIR/testset.jsonl.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import itertools
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fcsft.benchmarks.bfcl import VERSION, data_dir, load_bfcl, openai_tool, tool_name
from fcsft.curate.stage import CurateConfig, curate_stage
from fcsft.evaluate.testset import build_testset
from fcsft.expand.vary import find_slots, replace_all, vary
from fcsft.export import ExportConfig, export_dataset
from fcsft.formats.openai import parse_tool
from fcsft.generate.stage import GenerateConfig, generate_stage
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.models.base import ChatRequest, ChatResponse
from fcsft.models.cache import ResponseCache
from fcsft.models.client import Client
from fcsft.models.registry import load_model
from fcsft.records import Call, Task
from fcsft.runner.run import run_stage
from fcsft.stage import Outcome, Stage
from fcsft.tools.simulated import SimulatedTool
from fcsft.validate.stage import ValidateConfig, validate_stage

TRAIN_CATEGORIES = {  # category: how many tasks to draw (all there are for the small ones)
    "live_simple": 200,
    "live_multiple": 80,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    # Should-not-call examples, tools on offer and none called. With 40 (36 kept: 12% of the
    # conversations with tools) the tuned model called a tool on all 100 irrelevance items.
    "live_irrelevance": 160,
}
# With --python-tasks: BFCL's categories of Python functions that are not tested here, all of
# their items (parallel_multiple is BFCL's; the exec_* sets ship unused in bfcl-eval's data,
# their answers written as Python calls). Decontamination still removes any item that offers
# a test item's function or asks its question.
PYTHON_CATEGORIES = {"parallel_multiple": None}
EXEC_CATEGORIES = ("exec_simple", "exec_multiple", "exec_parallel", "exec_parallel_multiple")
TEST_CATEGORIES = ["simple_python", "multiple", "parallel", "irrelevance"]
GENERIC_WORDS = {"get", "set", "find", "search", "calculate", "create", "update", "list", "fetch"}
HARD_MISS_REPEATS = 3
PAIRS_PER_FUNCTION = 6  # a few functions (a shell command, the weather) have dozens of questions
RETURNS = {"type": ["object", "array", "string", "number", "boolean"]}  # any JSON value

SUBJECTS = [
    "photosynthesis",
    "compound interest",
    "the water cycle",
    "a balance sheet",
    "gravity",
    "a haiku",
    "supply and demand",
    "a prime number",
    "the French Revolution",
    "machine learning",
    "a volcano",
    "inflation",
    "the immune system",
    "an election",
    "a black hole",
    "recycling",
    "a spreadsheet",
    "the Renaissance",
    "a rainbow",
    "a password manager",
]
TEMPLATES = [
    "Explain {s} in two sentences.",
    "Give me three facts about {s}.",
    "Write a short poem about {s}.",
    "Why does {s} matter? Answer briefly.",
    "Describe {s} to a ten-year-old.",
    "What is a common misconception about {s}?",
    "Write one exam question about {s} and answer it.",
    "Summarise what you know about {s} in one paragraph.",
    "List two pros and two cons of learning about {s}.",
    "Suggest a title for an essay on {s}.",
    "What is 17 + 25? Then say one thing about {s}.",
]


def bfcl_tasks(
    per_category: dict[str, int | None], seed: int
) -> tuple[list[dict], dict[str, list]]:
    """Tasks with the gold plan (first acceptable value of each given parameter), and the
    tools each task offers, by task id."""
    tasks, tools = [], {}
    for category, limit in per_category.items():
        for item in load_bfcl(category, limit=limit, seed=seed):
            question = next(m["content"] for m in reversed(item["messages"]) if m["role"] == "user")
            first = (item.get("possible") or [[]])[0]
            plan = [
                Call(name=name, arguments=_first_values(params))
                for call in first
                for name, params in call.items()
            ]
            tasks.append(_task(item["id"], question, category, item["tools"], plan))
            tools[item["id"]] = [parse_tool(t, "tools") for t in item["tools"]]
    return tasks, tools


def _task(ident: str, question: str, category: str, offered: list[dict], plan: list) -> dict:
    """An expert task of its own family, offering `offered` (OpenAI tools); no plan: no call."""
    return Task(
        id=ident,
        question=question,
        family=ident,
        source="expert",
        domain=category,
        tools=[t["function"]["name"] for t in offered],
        plan=plan or None,
        no_tool=not plan,
    ).to_json()


def exec_tasks() -> tuple[list[dict], dict[str, list]]:
    """Tasks from bfcl-eval's unused exec_* sets, whose answers are Python call strings; an
    answer with anything but literal arguments is skipped."""
    unused = data_dir() / "unused_datasets"
    tasks, tools = [], {}
    for category in EXEC_CATEGORIES:
        answers = {
            a["id"]: a["ground_truth"]
            for a in read_jsonl(unused / "possible_answer" / f"{VERSION}_{category}.json")
        }
        for entry in read_jsonl(unused / "question" / f"{VERSION}_{category}.json"):
            plan = python_calls(answers.get(entry["id"], []))
            if not plan:
                continue
            offered = [openai_tool(f) for f in entry["function"]]
            question = entry["question"][0][-1]["content"]
            tasks.append(_task(entry["id"], question, category, offered, plan))
            tools[entry["id"]] = [parse_tool(t, "tools") for t in offered]
    return tasks, tools


def python_calls(sources: list[str]) -> list[Call] | None:
    """`f(a=1, b=[2])` strings as calls with their literal arguments; None if one is not that."""
    calls = []
    for source in sources:
        try:
            node = ast.parse(source, mode="eval").body
            if not isinstance(node, ast.Call) or node.args:
                return None
            arguments = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
        except (SyntaxError, ValueError):
            return None
        calls.append(Call(name=tool_name(ast.unparse(node.func)), arguments=arguments))
    return calls or None


def near_misses(
    tasks: list[dict], specs: dict[str, list], count: int, seed: int
) -> tuple[list[dict], dict[str, list]]:
    """Should-not-call tasks that read like call tasks: a live_simple question offered only
    another task's functions, none sharing a word of its name with the functions the question
    needs (`get_weather` and `weather_forecast` share one, so that pair is never made)."""
    rng = random.Random(seed)
    simple = [t for t in tasks if t["domain"] == "live_simple" and t.get("plan")]
    offers = {t["id"]: _words_of(t["tools"]) for t in simple}
    made, offered = [], {}
    for task in rng.sample(simple, min(count, len(simple))):
        wanted = _words_of(call["name"] for call in task["plan"])
        others = [other for other in simple if not wanted & offers[other["id"]]]
        if not others:
            continue
        other = rng.choice(others)
        made.append(_no_call(task, "near-miss", other["tools"]))
        offered[made[-1]["id"]] = specs[other["id"]]
    return made, offered


def sibling_misses(
    tasks: list[dict], specs: dict[str, list], count: int, seed: int
) -> tuple[list[dict], dict[str, list]]:
    """Should-not-call tasks from the same domain: a live_multiple question offered the other
    functions of its own list, less the needed ones and any sharing a word of their names
    (a weather question keeps its list's stock and news functions, not `weather_forecast`)."""
    rng = random.Random(seed)
    multiple = [t for t in tasks if t["domain"] == "live_multiple" and t.get("plan")]
    made, offered = [], {}
    for task in rng.sample(multiple, min(count, len(multiple))):
        wanted = _words_of(call["name"] for call in task["plan"])
        left = [spec for spec in specs[task["id"]] if not wanted & _words(spec.name)]
        if not left:
            continue
        made.append(_no_call(task, "sibling-miss", [spec.name for spec in left]))
        offered[made[-1]["id"]] = left
    return made, offered


def hard_misses(count: int, seed: int) -> tuple[list[dict], dict[str, list]]:
    """Should-not-call tasks where the one function on offer is about the same thing as the
    question but does something else: a live_multiple question offered a function of its own
    list that shares a telling word with the needed one (`Movies_1_BuyMovieTickets` for a
    question that needs `Movies_1_FindMovies`), the form of BFCL's irrelevance items. Variants
    of the needed function (`uber_ride2` for `uber_ride`) are never offered, nor any function
    more than `HARD_MISS_REPEATS` times (a few schemas recur across hundreds of items)."""
    rng = random.Random(seed)
    tasks, specs = bfcl_tasks({"live_multiple": None}, seed)
    made, offered, uses = [], {}, Counter()
    for task in rng.sample(tasks, len(tasks)):
        if len(made) == count:
            break
        if not task.get("plan"):
            continue
        needed = {call["name"] for call in task["plan"]}
        wanted = _words_of(needed)
        close = [
            spec
            for spec in specs[task["id"]]
            if wanted & _words(spec.name)
            and not any(_variant(spec.name, n) for n in needed)
            and uses[spec.name] < HARD_MISS_REPEATS
        ]
        if close:
            spec = rng.choice(close)
            uses[spec.name] += 1
            made.append(_no_call(task, "hard-miss", [spec.name]))
            offered[made[-1]["id"]] = [spec]
    return made, offered


def among_others(
    tasks: list[dict], specs: dict[str, list], count: int, seed: int
) -> tuple[list[dict], dict[str, list]]:
    """Tool-selection tasks, the form of BFCL's multiple items: a question that needs the one
    function its task offers, asked with one to three other tasks' functions on offer besides
    (none sharing a telling word of its name, so only one fits), the same plan. It keeps the
    question's family, so the split keeps both forms on one side."""
    rng = random.Random(f"among:{seed}")
    single = [
        t for t in tasks if len(t.get("plan") or []) == 1 and t["tools"] == [t["plan"][0]["name"]]
    ]
    made, offered = [], {}
    for task in rng.sample(single, min(count, len(single))):
        wanted = _words(task["plan"][0]["name"])
        others = [o for o in single if not wanted & _words(o["tools"][0])]
        want, chosen = rng.randint(1, 3), {}
        for other in rng.sample(others, len(others)):
            if len(chosen) == want:
                break
            chosen.setdefault(other["tools"][0], specs[other["id"]][0])
        if not chosen:
            continue
        order = [(task["tools"][0], specs[task["id"]][0]), *chosen.items()]
        rng.shuffle(order)
        made.append(
            Task(
                id=f"{task['id']}-among",
                question=task["question"],
                family=task["family"],
                how="combine",
                parents=[task["id"]],
                source="expert",
                domain="among_others",
                tools=[name for name, _ in order],
                plan=[Call(**task["plan"][0])],
            ).to_json()
        )
        offered[made[-1]["id"]] = [spec for _, spec in order]
    return made, offered


def parallel_pairs(
    tasks: list[dict], specs: dict[str, list], count: int, seed: int
) -> tuple[list[dict], dict[str, list]]:
    """Parallel-call tasks combined from two: two questions that call the same one function
    with the same functions on offer, asked as one (`Q1 Also, Q2`), whose plan is both calls at
    once, the form of BFCL's parallel items. The pipeline's own combination asks a model to
    write the joint question, which a 135M model cannot; this is that step by a template. The
    pair keeps its first question's family and names the second's as related, so the split
    keeps both on one side."""
    rng = random.Random(f"pairs:{seed}")
    alike: dict[tuple, list[dict]] = {}
    for task in tasks:
        plan = task.get("plan") or []
        if len(plan) == 1 and "\n" not in task["question"]:
            alike.setdefault((plan[0]["name"], tuple(sorted(task["tools"]))), []).append(task)
    pairs = [
        (a, b)
        for group in alike.values()
        for a, b in itertools.combinations(group, 2)
        if a["plan"][0]["arguments"] != b["plan"][0]["arguments"]
    ]
    made, offered, uses = [], {}, Counter()
    for a, b in rng.sample(pairs, len(pairs)):
        if len(made) == count:
            break
        name = a["plan"][0]["name"]
        if uses[name] == PAIRS_PER_FUNCTION:
            continue
        uses[name] += 1
        if rng.random() < 0.5:
            a, b = b, a
        first = a["question"].strip()
        joint = f"{first}{'' if first[-1:] in '.?!' else '.'} Also, {b['question'].strip()}"
        made.append(
            Task(
                id=f"{a['id']}+{b['id']}",
                question=joint,
                family=a["family"],
                how="combine",
                parents=[a["id"], b["id"]],
                related=[b["family"]],
                source="expert",
                domain="parallel_pair",
                tools=a["tools"],
                plan=[Call(**a["plan"][0]), Call(**b["plan"][0])],
            ).to_json()
        )
        offered[made[-1]["id"]] = specs[a["id"]]
    return made, offered


def variations(
    tasks: list[dict], specs: dict[str, list], count: int, seed: int
) -> tuple[list[dict], dict[str, list]]:
    """Argument-extraction tasks from the pipeline's own parameter variation: a task's question
    with one or two of its numbers, years or dates changed, and its plan changed to match, one
    variation for each of up to `count` tasks. A variation is kept only where every value
    changed in the question is an argument of the plan and the plan changed in nothing else (a
    number the question states but the call does not take would leave the plan stale), so each
    one asks the model to copy a new value. It keeps its task's family and functions."""
    rng = random.Random(f"vary:{seed}")
    made, offered = [], {}
    for raw in rng.sample(tasks, len(tasks)):
        if len(made) == count:
            break
        if not raw.get("plan"):
            continue
        task = Task.model_validate(raw)
        for varied in vary(task, 1, {}, seed=seed):
            before = [call.arguments for call in task.plan]
            after = [call.arguments for call in varied.plan or []]
            swaps = _swaps(task.question, varied.question)
            each_used = all(replace_all(before, {a: b}) != before for a, b in swaps.items())
            if swaps and each_used and replace_all(before, swaps) == after:
                made.append(varied.to_json())
                offered[varied.id] = specs[task.id]
    return made, offered


def _swaps(before: str, after: str) -> dict[str, str]:
    """The values a variation changed, old -> new: the slots of the two questions side by side
    (a variation changes values in place, so both have as many, in the same order); none if
    they do not pair up."""
    old, new = find_slots(before, {}), find_slots(after, {})
    if len(old) != len(new):
        return {}
    return {a.value: b.value for a, b in zip(old, new, strict=True) if a.value != b.value}


def _variant(one: str, other: str) -> bool:
    """Whether one name extends the other (`uber_ride2`, `get_readings_history_by_interval`)."""
    a, b = (re.sub(r"[^a-z]", "", name.lower()) for name in (one, other))
    return a.startswith(b) or b.startswith(a)


def _no_call(task: dict, kind: str, tools: list[str]) -> dict:
    """`task`'s question offered `tools`, none of which it needs; it keeps the question's family,
    so the split never puts the two sides of a question apart."""
    return Task(
        id=f"{task['id']}-{kind}",
        question=task["question"],
        family=task["family"],
        source="expert",
        domain=kind.replace("-", "_"),
        tools=tools,
        no_tool=True,
    ).to_json()


def _words_of(names: Iterable[str]) -> set[str]:
    """The telling words of all these function names together."""
    return set().union(*(_words(name) for name in names))


def _words(name: str) -> set[str]:
    """The telling lower-case words of a function name: `Weather.getForecast_v2` -> weather,
    forecast, v2 (verbs every API uses, and bare numbers such as the 3 of `Movies_3_FindMovies`,
    say nothing about what it is for)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    words = {word.lower() for word in re.split(r"[^A-Za-z0-9]+", spaced) if word}
    return {word for word in words - GENERIC_WORDS if not word.isdigit()}


def _first_values(params: dict[str, list[Any]]) -> dict[str, Any]:
    """BFCL lists acceptable values per parameter; "" means it may be left out."""
    return {key: values[0] for key, values in params.items() if values and values[0] != ""}


def namespaces(tasks: list[dict], specs: dict[str, list]) -> list[list[dict]]:
    """Tasks grouped so that within a group a function name has one definition.

    BFCL's items define their own functions and the same name often means different schemas
    in different items; a generate stage holds one toolbox, so each group is its own stage."""
    groups: list[tuple[dict[str, str], list[dict]]] = []
    for task in tasks:
        mine = {spec.name: spec.model_dump_json() for spec in specs[task["id"]]}
        for names, members in groups:
            if all(names.get(name, schema) == schema for name, schema in mine.items()):
                names.update(mine)
                members.append(task)
                break
        else:
            groups.append((dict(mine), [task]))
    return [members for _, members in groups]


class TemplateAPI:
    """Plays every simulated API: a success result that echoes the call, the same every time."""

    name = "template-api"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        text = request.messages[-1]["content"]
        name = text.split("\n", 1)[0].removeprefix("API: ")
        arguments = json.loads(text.rsplit("Call arguments: ", 1)[1])
        result = {"status": "success", "function": name, "arguments": arguments}
        return ChatResponse(message={"role": "assistant", "content": json.dumps(result)})


def general_prompts(count: int, seed: int) -> list[str]:
    prompts = [t.format(s=s) for t, s in itertools.product(TEMPLATES, SUBJECTS)]
    return random.Random(seed).sample(prompts, min(count, len(prompts)))


def general_stage(client: Any, name: str) -> Stage:
    """The base model's own answers to general prompts: general data that keeps what it knew."""
    from fcsft.models.ask import ask

    async def process(obj: dict[str, Any]) -> list[Outcome]:
        answer = await ask(client, name, obj["question"], temperature=0.0, max_tokens=128)
        if not answer.text:
            return []
        messages = [
            {"role": "user", "content": obj["question"]},
            {"role": "assistant", "content": answer.text},
        ]
        return [Outcome({"messages": messages, "meta": {"id": obj["id"]}})]

    return Stage(name="general", process=process, config={"model": name}, parallel=32)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", type=Path, default=Path("runs/bfcl-smollm2"))
    parser.add_argument("--model", default="local:smollm2")
    parser.add_argument("--general", type=int, default=110, help="general prompts to answer")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--near-miss",
        type=int,
        default=0,
        help="should-not-call tasks made by offering a live_simple question another task's tools",
    )
    parser.add_argument(
        "--sibling-miss",
        type=int,
        default=0,
        help="should-not-call tasks made by offering a live_multiple question the rest of its list",
    )
    parser.add_argument(
        "--hard-miss",
        type=int,
        default=0,
        help="should-not-call tasks made by offering a live_multiple question one function of "
        "its list on the same subject that does something else",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=0,
        help="parallel-call tasks made by asking two questions that call the same function as one",
    )
    parser.add_argument(
        "--among",
        type=int,
        default=0,
        help="tool-selection tasks made by offering a one-function question 1-3 other functions",
    )
    parser.add_argument(
        "--vary",
        type=int,
        default=0,
        help="argument-extraction tasks made by changing a task's numbers, years or dates in its "
        "question and plan alike (the pipeline's parameter variation)",
    )
    parser.add_argument(
        "--python-tasks",
        action="store_true",
        help="add BFCL's untested Python-function sets (parallel_multiple, exec_*) as tasks",
    )
    parser.add_argument(
        "--decline",
        help="the reply to every should-not-call task, instead of the model's own answer",
    )
    args = parser.parse_args()
    run_dir: Path = args.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)

    tasks, specs = bfcl_tasks(TRAIN_CATEGORIES, args.seed)
    if args.python_tasks:
        more, more_specs = bfcl_tasks(PYTHON_CATEGORIES, args.seed)
        executable, executable_specs = exec_tasks()
        tasks += more + executable
        specs |= more_specs | executable_specs
    made, offered = near_misses(tasks, specs, args.near_miss, args.seed)
    siblings, sibling_specs = sibling_misses(tasks, specs, args.sibling_miss, args.seed)
    hard, hard_specs = hard_misses(args.hard_miss, args.seed)
    pairs, pair_specs = parallel_pairs(tasks, specs, args.pairs, args.seed)
    among, among_specs = among_others(tasks, specs, args.among, args.seed)
    varied, varied_specs = variations(tasks, specs, args.vary, args.seed)
    tasks = tasks + made + siblings + hard + pairs + among + varied
    specs = specs | offered | sibling_specs | hard_specs | pair_specs | among_specs | varied_specs
    write_jsonl(run_dir / "tasks.jsonl", tasks)
    prompts = [
        {"id": f"general-{k}", "question": q}
        for k, q in enumerate(general_prompts(args.general, args.seed))
    ]
    write_jsonl(run_dir / "general-prompts.jsonl", prompts)

    provider = load_model(args.model)
    client = Client(provider, concurrency=32, cache=ResponseCache(run_dir / "cache.sqlite"))
    api = TemplateAPI()
    generate = GenerateConfig(
        reference="plan",
        think="none",
        plan_turns="parallel",
        answer="template",
        max_steps=1,
        reply_tokens=96,
        decline=args.decline,
    )
    outputs = []
    for k, group in enumerate(namespaces(tasks, specs)):
        write_jsonl(run_dir / f"tasks-{k}.jsonl", group)
        tools = {
            spec.name: SimulatedTool(spec, RETURNS, api)
            for task in group
            for spec in specs[task["id"]]
        }
        stage = generate_stage(generate, client, provider.name, tools)
        stage.name = f"generate-{k}"
        stats = run_stage(stage, run_dir, [run_dir / f"tasks-{k}.jsonl"])
        outputs.append(run_dir / stage.name / "out.jsonl")
        print(f"generate-{k}: {stats['out']} trajectories of {stats['in']} tasks", flush=True)
    stats = run_stage(
        general_stage(client, provider.name), run_dir, [run_dir / "general-prompts.jsonl"]
    )
    print(f"general: {stats['out']} answers", flush=True)
    validate = ValidateConfig(min_steps=1)
    stats = run_stage(validate_stage(validate), run_dir, outputs)
    print(f"validate: {stats['out']} kept, {stats['rejected']} rejected {stats.get('reasons')}")
    curate = CurateConfig(
        test_share=0.1,
        general=[run_dir / "general" / "out.jsonl"],
        decontaminate_bfcl=TEST_CATEGORIES,
        balance_target=None,
        max_drop=0.3,
    )
    stats = run_stage(curate_stage(curate), run_dir, [run_dir / "validate" / "out.jsonl"])
    print(f"curate: {stats['out']} kept, {stats['rejected']} dropped {stats.get('reasons')}")
    result = export_dataset(
        run_dir / "curate" / "out.jsonl", run_dir / "export", ExportConfig(formats=["openai"])
    )
    print(f"export: {result['sizes']}")
    items = build_testset(run_dir / "curate" / "out.jsonl", 100, 50, 30, seed=args.seed)
    write_jsonl(run_dir / "testset.jsonl", items)
    print(f"testset: {len(items)} items -> {run_dir / 'testset.jsonl'}")
    asyncio.run(client.close())
    return 0


if __name__ == "__main__":
    sys.exit(main())
