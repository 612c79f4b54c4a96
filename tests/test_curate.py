"""Curation controls with exact counts, the family-split invariant, and exports that load back."""

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from fcsft.curate.balance import balance
from fcsft.curate.split import assign_splits
from fcsft.curate.stage import CurateConfig, curate, curate_stage
from fcsft.export import ExportConfig, export_dataset
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.records import FinalAnswer, Meta, Observation, Tool, ToolCall, Trajectory
from fcsft.runner.run import run_stage

OPENAI = get_format("openai")
TOOLS = [Tool(name=n) for n in ("search", "python", "fetch")]


def make(ident, family, tools, question=None, task=None, related=()):
    steps = []
    for k, name in enumerate(tools):
        steps += [
            ToolCall(name=name, arguments={"q": f"{ident}-{k}"}, id=f"c{k}"),
            Observation(content="r", call_id=f"c{k}"),
        ]
    steps.append(FinalAnswer(text="done"))
    return Trajectory(
        id=ident,
        question=question or f"question number {ident} about {family}",
        tools=TOOLS,
        steps=steps,
        meta=Meta(task_id=task or ident, family=family, related=list(related)),
    )


def test_balance_downsamples_the_dominant_tool_exactly():
    usage = {f"s{i}": Counter(search=1) for i in range(7)}
    usage |= {f"p{i}": Counter(python=1) for i in range(2)} | {"f": Counter(fetch=1)}
    result = balance(usage, max_drop=0.5)
    assert result.before == {"search": 7, "python": 2, "fetch": 1}
    assert result.after == {"search": 2, "python": 2, "fetch": 1}
    assert len(result.dropped) == 5 and result.under == []


def test_balance_respects_max_drop_and_reports_starved_tools():
    usage = {f"s{i}": Counter(search=1) for i in range(8)} | {"f": Counter(fetch=1)}
    result = balance(usage, max_drop=0.25)
    assert len(result.dropped) == 2 and result.after == {"search": 6, "fetch": 1}
    assert result.under == ["fetch"]


def test_balance_toward_a_target_counts_exactly_and_names_tools_without_data():
    usage = {f"s{i}": Counter(search=1) for i in range(6)}
    usage |= {"p0": Counter(python=1), "p1": Counter(python=1)}
    usage |= {"mix": Counter(search=1, fetch=1), "chat": Counter()}
    result = balance(usage, {"search": 0.5, "python": 0.25, "fetch": 0.25}, max_drop=0.6)
    # 7/2/1 -> 3/2/1: four search-only records go (the 50/50 one never leans hardest), then
    # dropping a python one would move away from the target, so balancing stops.
    assert result.before == {"search": 7, "python": 2, "fetch": 1}
    assert result.after == {"search": 3, "python": 2, "fetch": 1}
    assert sorted(result.dropped) == ["s0", "s1", "s2", "s4"]
    assert {"mix", "chat", "p0", "p1"} <= set(result.keep) and result.under == []
    wider = balance(usage, {"search": 2, "python": 1, "fetch": 1, "calculator": 1}, max_drop=0.6)
    assert wider.target == {"calculator": 0.2, "fetch": 0.2, "python": 0.2, "search": 0.4}
    assert wider.after == {"search": 3, "python": 1, "fetch": 1}
    assert len(wider.dropped) == 5  # the budget: int(0.6 * 9 records with calls)
    assert wider.under == ["calculator"]  # no data at all: only new seeds can fix it


def family_items(top: int, tools, min_size: int = 0, max_size: int = 60):
    """(family, related families, tools) triples over family numbers 0..top."""
    related = st.lists(st.integers(0, top), max_size=2)
    return st.lists(
        st.tuples(st.integers(0, top), related, tools), min_size=min_size, max_size=max_size
    )


@settings(max_examples=200, deadline=None)
@given(
    family_items(30, st.sets(st.sampled_from(["a", "b", "c"]))),
    st.floats(0, 0.9),
    st.sets(st.sampled_from(["a", "b", "c"]), max_size=1),
)
def test_no_family_straddles_the_split(items, share, held):
    items = [(f"f{f}", [f"f{r}" for r in related], tools) for f, related, tools in items]
    sides = assign_splits(items, share, seed=1, held_out_tools=held)
    for family, related, tools in items:
        assert all(sides[r] == sides[family] for r in related)  # combinations stay together
        if tools & held:
            assert sides[family] == "test"


@settings(max_examples=40, deadline=None)
@given(
    family_items(
        12,
        st.lists(st.sampled_from(["search", "python", "fetch"]), min_size=1, max_size=3),
        min_size=1,
        max_size=25,
    ),
    st.floats(0, 0.9),
)
def test_curated_records_never_put_a_family_on_both_sides(items, share):
    trajectories = [
        make(f"t{k}", f"f{f}", tools, related=[f"f{r}" for r in related])
        for k, (f, related, tools) in enumerate(items)
    ]
    config = CurateConfig(test_share=share, held_out_tools=["fetch"], max_drop=0.5)
    pairs, report = curate([OPENAI.render(t) for t in trajectories], config)
    side: dict[str, str] = {}
    kept = [o.record for _, outcomes in pairs for o in outcomes if o.passed]
    for record in kept:
        meta = record["meta"]
        for family in [meta["family"], *meta.get("related", [])]:
            assert side.setdefault(family, meta["split"]) == meta["split"], family
        calls = [
            c["function"]["name"] for m in record["messages"] for c in m.get("tool_calls") or []
        ]
        if "fetch" in calls:
            assert meta["split"] == "test"  # a held-out tool is never trained on
    assert "fetch" not in report["tools_after"]
    assert report["split"]["train"] == sum(r["meta"]["split"] == "train" for r in kept)


def test_curate_counts_every_control(tmp_path):
    trajectories = [make(f"s{i}", f"f{i}", ["search"]) for i in range(8)]
    trajectories += [make("p1", "f8", ["python"]), make("p2", "f9", ["python", "fetch"])]
    trajectories += [make("s0-dup", "f0", ["search"], question=trajectories[0].question)]
    trajectories[-1] = trajectories[-1].model_copy(update={"steps": trajectories[0].steps})
    trajectories += [make("s1#1", "f1", ["search", "search"], task="s1")]  # a second sample
    trajectories += [
        make(
            "leak",
            "f10",
            ["python"],
            question="the quick brown fox jumps over the lazy dog near the river bank today",
        )
    ]
    source = tmp_path / "validated.jsonl"
    write_jsonl(source, (OPENAI.render(t) for t in trajectories))
    evalset = tmp_path / "heldout.jsonl"
    write_jsonl(
        evalset,
        [
            {
                "question": "Did the quick brown fox jump over the lazy dog near the "
                "river bank yesterday?"
            }
        ],
    )
    general = tmp_path / "general.jsonl"
    write_jsonl(
        general,
        (
            {
                "messages": [
                    {"role": "user", "content": f"Tell me fact {i}"},
                    {"role": "assistant", "content": f"Fact {i}."},
                ]
            }
            for i in range(10)
        ),
    )
    config = CurateConfig(
        test_share=0.0,
        general=[general],
        decontaminate=[evalset],
        max_drop=0.5,
        balance_tolerance=0.1,
    )
    stats = run_stage(curate_stage(config), tmp_path / "run", [source])
    assert stats["reasons"] == {
        "curate.balanced_out": 5,
        "curate.contaminated": 1,
        "curate.duplicate": 1,
        "curate.extra_sample": 1,
    }
    report = stats["report"]
    assert report["decontamination"]["hits"] == {"heldout": 1}
    assert report["tools_before"] == {"search": 8, "python": 2, "fetch": 1}
    assert report["tools_after"] == {"search": 3, "python": 2, "fetch": 1}
    assert report["split"] == {"train": 7, "test": 0}  # 5 tool trajectories + 2 general
    assert report["general"] == {
        "available": 10,
        "wanted": 2,
        "used": 2,
        "ratio": 0.2857,
        "with_tools": 0,
        "problems": [],
    }
    kept = list(read_jsonl(tmp_path / "run/curate/out.jsonl"))
    assert all(r["meta"]["split"] == "train" for r in kept)


def test_every_export_loads_back(tmp_path):
    import datasets

    trajectories = [make(f"t{i}", f"f{i}", ["search", "python"][: 1 + i % 2]) for i in range(30)]
    source = tmp_path / "validated.jsonl"
    write_jsonl(source, (OPENAI.render(t) for t in trajectories))
    run = tmp_path / "run"
    stats = run_stage(curate_stage(CurateConfig(test_share=0.3)), run, [source])
    curated = list(read_jsonl(run / "curate/out.jsonl"))
    out = tmp_path / "export"
    config = ExportConfig(formats=["openai", "sharegpt", "parquet"])
    result = export_dataset(run / "curate/out.jsonl", out, config)
    assert result["sizes"] == stats["report"]["split"]
    assert result["sizes"]["test"] > 0
    sharegpt, finetune = get_format("sharegpt"), get_format("openai-finetune")
    for split, size in result["sizes"].items():
        expected = [r for r in curated if r["meta"]["split"] == split]
        assert len(expected) == size
        wanted = [OPENAI.parse(r) for r in expected]
        # The sidecar's line N is the metadata of line N of each JSON-lines export.
        meta = [
            {k: v for k, v in m.items() if k != "line"}
            for m in read_jsonl(out / f"{split}.meta.jsonl")
        ]
        assert meta == [r["meta"] for r in expected]
        # openai is OpenAI's fine-tuning record of each trajectory; sharegpt with its
        # metadata put back is the same trajectories through the project's own parser.
        assert list(read_jsonl(out / f"{split}.openai.jsonl")) == [
            finetune.render(t) for t in wanted
        ]
        back = [
            sharegpt.parse({**r, "meta": m})
            for r, m in zip(read_jsonl(out / f"{split}.sharegpt.jsonl"), meta, strict=True)
        ]
        assert back == wanted
        loaded = datasets.load_dataset(
            "parquet", data_files=str(out / f"hf/{split}.parquet"), split="train"
        )
        assert [row["id"] for row in loaded] == [r["meta"]["id"] for r in expected]
        # Tools, call arguments and meta come back as objects, not JSON text.
        rows = []
        for row in loaded:
            messages = [{k: v for k, v in m.items() if v is not None} for m in row["messages"]]
            for message in messages:
                for call in message.get("tool_calls", []):
                    assert isinstance(call["function"]["arguments"], dict)
            rows.append({"messages": messages, "tools": row["tools"], "meta": row["meta"]})
        assert [OPENAI.parse(row) for row in rows] == wanted
    info = json.loads((out / "dataset_info.json").read_text())
    assert {entry["file_name"] for entry in info.values()} == {
        "train.sharegpt.jsonl",
        "test.sharegpt.jsonl",
    }
    assert info["fcsft_train"]["tags"]["function_tag"] == "function_call"


def test_testset_layers_from_the_held_out_split(tmp_path):
    from fcsft.evaluate.testset import build_testset

    trajectories = [
        make(f"t{i}", f"f{i}", ["search", "python", "fetch"][: 1 + i % 3]) for i in range(40)
    ]
    trajectories.append(
        Trajectory(
            id="n1",
            question="What is 2+2?",
            tools=TOOLS,
            steps=[FinalAnswer(text="4")],
            meta=Meta(family="n1", no_tool=True),
        )
    )
    source = tmp_path / "validated.jsonl"
    write_jsonl(source, (OPENAI.render(t) for t in trajectories))
    run = tmp_path / "run"
    run_stage(curate_stage(CurateConfig(test_share=0.5, held_out_tools=["fetch"])), run, [source])
    items = build_testset(run / "curate/out.jsonl", held_out_tools=["fetch"])
    layers = Counter(i["layer"] for i in items)
    assert layers["standard"] > 0 and layers["ood"] > 0 and layers["adversarial"] >= 16
    test_ids = {
        json.loads(line)["meta"]["id"]
        for line in (run / "curate/out.jsonl").open()
        if json.loads(line)["meta"]["split"] == "test"
    }
    assert {i["id"] for i in items if not i["id"].startswith("adv-")} <= test_ids  # never train
    for item in items:
        if item["layer"] == "ood":
            assert item["kind"] in {"unseen_tool", "long_chain"}
        if item["layer"] == "adversarial":
            assert item["gold"] == []
        else:
            assert item["gold"] and item["gold"][0][0]["name"] in {"search", "python", "fetch"}


def test_generated_should_not_call_items_offer_one_toolbox_not_every_tool(tmp_path):
    """A project whose tasks bring their own functions (BFCL's) must not offer a chit-chat item
    the union of all of them: each generated item offers one held-out trajectory's toolbox."""
    from fcsft.evaluate.testset import build_testset

    trajectories = []
    for i in range(20):
        schema = {"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}
        own = [Tool(name=f"api{i}_lookup", parameters=schema), Tool(name=f"api{i}_list")]
        trajectory = make(f"t{i}", f"f{i}", [])
        trajectory.tools = own
        trajectory.steps = [
            ToolCall(name=f"api{i}_lookup", arguments={"key": "k"}, id="c0"),
            Observation(content="r", call_id="c0"),
            FinalAnswer(text="done"),
        ]
        trajectories.append(trajectory)
    source = tmp_path / "validated.jsonl"
    write_jsonl(source, (OPENAI.render(t) for t in trajectories))
    run = tmp_path / "run"
    run_stage(curate_stage(CurateConfig(test_share=0.5)), run, [source])
    test = [
        json.loads(line)
        for line in (run / "curate/out.jsonl").open()
        if json.loads(line)["meta"]["split"] == "test"
    ]
    boxes = {tuple(t["function"]["name"] for t in obj["tools"]) for obj in test}
    items = build_testset(run / "curate/out.jsonl", adversarial=100)
    generated = [i for i in items if i["id"].startswith("adv-")]
    assert {i["kind"] for i in generated} == {"chit_chat", "unanswerable", "missing_value"}
    offered = [tuple(t["function"]["name"] for t in i["tools"]) for i in generated]
    assert set(offered) <= boxes and len(set(offered)) > 1  # one box each, taken in turn
    for item in generated:
        if item["kind"] == "missing_value":
            assert item["question"].startswith(f"Please use {item['tools'][0]['function']['name']}")


LONG = (
    "find the annual report of Orrin Dynamics for 2024 and list its revenue, its profit, the "
    "size of its workforce and the name of its chief executive"
)


def test_one_question_with_another_menu_is_kept_and_the_same_menu_is_a_duplicate():
    """The same question and calls offered other functions is another choice to learn (the
    needed one among distractors); offered the same functions it is a copy, exact or near."""
    base = make("a", "f0", ["search"], question=LONG)
    wider = base.model_copy(update={"id": "a-among", "meta": Meta(task_id="a-among", family="f0")})
    wider = wider.model_copy(update={"tools": [*TOOLS, Tool(name="weather")]})
    copy = base.model_copy(update={"id": "a-copy", "meta": Meta(task_id="a-copy", family="f0")})
    near = base.model_copy(
        update={
            "id": "a-near",
            "question": LONG + " please",
            "meta": Meta(task_id="a-near", family="f0"),
        }
    )
    results, _ = curate(
        [OPENAI.render(t) for t in (base, wider, copy, near)],
        CurateConfig(test_share=0.0, balance_target=None, max_drop=1.0, near_duplicate=0.8),
    )
    failed = {
        ident: [(v.rule, v.reason) for o in outs for v in o.verdicts if not v.passed]
        for ident, outs in results
    }
    assert failed["a"] == [] and failed["a-among"] == []
    assert failed["a-copy"] == [("curate.duplicate", "same as a")]
    assert [rule for rule, _ in failed["a-near"]] == ["curate.near_duplicate"]
    assert "similar to a" in failed["a-near"][0][1]


def test_a_share_of_general_data_is_offered_tools_and_still_answers_without_a_call(tmp_path):
    """general_with_tools: that share of the general conversations carries the function list
    of a training record, their answers unchanged and no call in them; the rest offer none."""
    menus = [[Tool(name="search")], [Tool(name="python"), Tool(name="fetch")]]
    train = [make(f"t{i}", f"f{i}", ["search"]) for i in range(6)]
    train = [t.model_copy(update={"tools": menus[i % 2]}) for i, t in enumerate(train)]
    general = tmp_path / "general.jsonl"
    answers = {f"Tell me fact {i}": f"Fact {i}." for i in range(8)}
    write_jsonl(
        general,
        (
            {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
            for q, a in answers.items()
        ),
    )
    config = CurateConfig(
        test_share=0.0,
        general=[general],
        general_ratio=0.5,
        general_with_tools=0.5,
        balance_target=None,
        max_drop=0.0,
    )
    results, report = curate([OPENAI.render(t) for t in train], config)
    mixed = [
        OPENAI.parse(o.record)
        for ident, outs in results
        if ident.startswith("general:")
        for o in outs
    ]
    assert report["general"]["used"] == 6 and report["general"]["with_tools"] == 3
    offered = [t for t in mixed if t.tools]
    assert len(offered) == 3
    names = [[tool.name for tool in m] for m in menus]
    assert all([tool.name for tool in t.tools] in names for t in offered)
    for t in mixed:
        assert t.calls == [] and t.final_answer == answers[t.question]
    again, _ = curate([OPENAI.render(t) for t in train], config)
    assert again == results  # the same seed offers the same menus to the same conversations
