"""The search built-in over a tiny corpus written by the test."""

import asyncio
import json

import pytest

from fcsft.errors import UserError
from fcsft.tools import Toolbox, search_tool

DOCS = {
    "refunds.md": "# Refund policy\n\nCustomers may request a refund within 30 days of delivery. "
    "International orders are refunded to the original card.",
    "shipping/rates.md": "# Shipping rates\n\nStandard shipping costs 5 euros. Express shipping to "
    "Germany and France costs 15 euros.",
    "notes.txt": "Office opening hours\n\nThe office opens at 9 and closes at 17 on weekdays.",
    "ignored.json": '{"refund": "refund refund refund"}',
}


@pytest.fixture
def corpus(tmp_path):
    for name, text in DOCS.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def search(tool, **arguments):
    result = asyncio.run(tool.run(arguments))
    assert not result.error, result.content
    return result.content


def test_the_matching_document_ranks_first(corpus):
    tool = search_tool(corpus)
    hits = json.loads(search(tool, query="express shipping cost to Germany"))
    assert hits[0]["path"] == "shipping/rates.md"
    assert hits[0]["title"] == "Shipping rates"
    assert "Express shipping to Germany" in hits[0]["snippet"]
    hits = json.loads(search(tool, query="refund for an international order"))
    assert hits[0]["path"] == "refunds.md"
    assert (
        json.loads(search(tool, query="when does the office open"))[0]["title"]
        == "Office opening hours"
    )


def test_only_md_and_txt_are_indexed_and_each_document_appears_once(corpus):
    hits = json.loads(search(search_tool(corpus), query="refund refund policy", k=10))
    paths = [hit["path"] for hit in hits]
    assert "ignored.json" not in paths
    assert len(paths) == len(set(paths))


def test_k_limits_the_results(corpus):
    hits = json.loads(search(search_tool(corpus), query="shipping refund office", k=2))
    assert len(hits) == 2


def test_no_match_says_so(corpus):
    assert search(search_tool(corpus), query="zebra") == "no document matches 'zebra'"


def test_a_long_document_is_found_at_its_matching_passage(tmp_path):
    filler = "\n\n".join(f"Paragraph {i} talks about gardening and tomatoes." for i in range(60))
    (tmp_path / "long.md").write_text(f"# Garden\n\n{filler}\n\nThe submarine dives to 300 metres.")
    (tmp_path / "other.md").write_text("# Other\n\nNothing relevant here at all.")
    hits = json.loads(search(search_tool(tmp_path, passage_words=50), query="submarine depth"))
    assert hits[0]["path"] == "long.md"
    assert "submarine dives" in hits[0]["snippet"]


def test_schema_and_missing_folder(corpus, tmp_path):
    spec = search_tool(corpus).spec
    assert spec.required == ["query"]
    assert spec.parameters["properties"]["k"] == {
        "type": "integer",
        "default": 5,
        "description": "How many documents to return at most.",
    }
    with pytest.raises(UserError, match="does not exist"):
        search_tool(tmp_path / "nowhere")


def test_search_and_fetch_from_config_resolve_paths_against_the_project(corpus):
    async def scenario():
        entries = [{"builtin": "search", "folder": "."}, {"builtin": "fetch", "root": "shipping"}]
        async with await Toolbox.open(entries, base_dir=corpus) as box:
            found = await box.run("search", {"query": "opening hours"})
            read = await box.run("fetch", {"url": f"file://{corpus}/shipping/rates.md"})
            refused = await box.run("fetch", {"url": f"file://{corpus}/refunds.md"})
            return found, read, refused

    found, read, refused = asyncio.run(scenario())
    assert json.loads(found.content)[0]["path"] == "notes.txt"
    assert read.content.startswith("# Shipping rates")
    assert refused.error and "outside the fetch root" in refused.content
