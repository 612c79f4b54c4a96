"""Curation controls with exact counts, the family-split invariant, and exports that load back."""

import json
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from fcsft.card import write_card
from fcsft.curate.balance import balance
from fcsft.curate.split import assign_splits
from fcsft.curate.stage import CurateConfig, curate_stage
from fcsft.export import export_dataset
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.records import FinalAnswer, Meta, Observation, Tool, ToolCall, Trajectory
from fcsft.stage import run_stage

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


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),
            st.lists(st.integers(0, 30), max_size=2),
            st.sets(st.sampled_from(["a", "b", "c"])),
        ),
        max_size=60,
    ),
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
        "problems": [],
    }
    kept = list(read_jsonl(tmp_path / "run/curate/out.jsonl"))
    assert all(r["meta"]["split"] == "train" for r in kept)


def test_exports_load_back_and_card_matches_stats(tmp_path):
    import datasets

    trajectories = [make(f"t{i}", f"f{i}", ["search", "python"][: 1 + i % 2]) for i in range(30)]
    source = tmp_path / "validated.jsonl"
    write_jsonl(source, (OPENAI.render(t) for t in trajectories))
    run = tmp_path / "run"
    stats = run_stage(curate_stage(CurateConfig(test_share=0.3)), run, [source])
    out = tmp_path / "export"
    result = export_dataset(run / "curate/out.jsonl", out, ["openai", "sharegpt", "parquet"])
    assert result["sizes"] == stats["report"]["split"]
    assert result["sizes"]["test"] > 0
    sharegpt = get_format("sharegpt")
    for split, size in result["sizes"].items():
        rows = list(read_jsonl(out / f"{split}.sharegpt.jsonl"))
        assert [sharegpt.parse(r).id for r in rows] == [
            json.loads(line)["meta"]["id"] for line in (out / f"{split}.openai.jsonl").open()
        ]
        loaded = datasets.load_dataset(
            "parquet", data_files=str(out / f"hf/{split}.parquet"), split="train"
        )
        assert len(loaded) == size
        first = loaded[0]
        assert first["messages"][0]["role"] == "user" and json.loads(first["tools"])
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["fcsft_train"]["tags"]["function_tag"] == "function_call"
    card = write_card(run, out, {"curate": {"test_share": 0.3}}, "demo").read_text()
    assert f"| train | {stats['report']['split']['train']} |" in card
    assert f"| test | {stats['report']['split']['test']} |" in card
    for png in ("tools.png", "steps.png", "rejections.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
