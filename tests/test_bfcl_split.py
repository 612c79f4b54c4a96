"""BFCL's dev/test split: fixed, at most a quarter dev, and what `fcsft eval --split` asks."""

import json

import pytest
import yaml

from clirun import fcsft
from fcsft.benchmarks import bfcl
from fcsft.benchmarks.bfcl import load_bfcl, parts, split_sizes
from fcsft.errors import UserError


def test_a_split_depends_on_the_ids_alone_and_keeps_dev_under_a_quarter():
    ids = [f"simple_python_{k}" for k in range(400)]
    first = parts(ids)
    assert parts(reversed(ids)) == first  # not on the order
    assert set(first) == set(ids) and set(first.values()) == {"dev", "test"}
    dev = [i for i in ids if first[i] == "dev"]
    assert len(dev) == 80  # floor(0.2 * 400)
    for n in (1, 3, 4, 7, 10, 99):
        assigned = parts(ids[:n])
        assert sum(p == "dev" for p in assigned.values()) <= 0.25 * n
    # Adding items to a category moves few of the old ones: the split is by a keyed hash.
    grown = parts([*ids, *(f"simple_python_{k}" for k in range(400, 440))])
    moved = sum(1 for i in ids if grown[i] != first[i])
    assert moved <= 10


def test_the_split_of_the_installed_bfcl_is_pinned():
    pytest.importorskip("bfcl_eval")
    sizes = {c: split_sizes(c) for c in ("simple_python", "multiple", "parallel", "irrelevance")}
    assert sizes == {
        "simple_python": {"dev": 80, "test": 320},
        "multiple": {"dev": 40, "test": 160},
        "parallel": {"dev": 40, "test": 160},
        "irrelevance": {"dev": 48, "test": 192},
    }
    dev = [item["id"] for item in load_bfcl("simple_python", split="dev")]
    test = [item["id"] for item in load_bfcl("simple_python", split="test")]
    assert not set(dev) & set(test) and len(dev) + len(test) == 400
    # The first dev ids, written down: a change of seed or hash would move the split.
    assert dev[:5] == PINNED_DEV
    limited = load_bfcl("simple_python", limit=30, seed=4, split="test")
    assert len(limited) == 30 and {item["split"] for item in limited} == {"test"}
    assert {item["id"] for item in limited} <= set(test)


PINNED_DEV = [
    "simple_python_1",
    "simple_python_11",
    "simple_python_12",
    "simple_python_18",
    "simple_python_20",
]


def test_an_unknown_split_names_the_choices():
    with pytest.raises(UserError, match="expected one of dev, test, all"):
        load_bfcl("simple_python", split="train")
    done = fcsft(
        "eval", "--model", "mock:x.yaml", "--bfcl", "irrelevance", "--split", "train", "--out", "o"
    )
    assert done.returncode == 2 and "--split 'train': expected dev, test or all" in done.stderr


def test_eval_asks_one_part_and_records_the_split_in_the_report(tmp_path, monkeypatch):
    pytest.importorskip("bfcl_eval")
    (tmp_path / "mock.yaml").write_text(yaml.safe_dump(["No function fits."] * 300))
    for part, expected in (("dev", 48), ("test", 192)):
        out = tmp_path / part
        done = fcsft(
            "eval",
            "--model",
            f"mock:{tmp_path / 'mock.yaml'}",
            "--bfcl",
            "irrelevance",
            "--split",
            part,
            "--out",
            str(out),
        )
        assert done.returncode == 0, done.stderr
        saved = json.loads((out / "report.json").read_text())
        assert saved["split"] == {
            "part": part,
            "seed": bfcl.SPLIT_SEED,
            "dev_share": bfcl.DEV_SHARE,
            "sizes": {"irrelevance": {"dev": 48, "test": 192}},
            "asked": {"irrelevance": expected},
        }
        assert saved["layers"]["irrelevance"]["no_call"]["n"] == expected
        assert f"{part} part" in (out / "report.html").read_text()
