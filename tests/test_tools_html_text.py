"""fetch on saved pages: the main text, every table row on one line with its label, no chrome."""

import asyncio
from html.parser import HTMLParser
from pathlib import Path

import pytest
from aiohttp import web

from fcsft.tools import fetch_tool
from fcsft.tools._html_text import html_to_text
from test_tools_fetch import serve

PAGES = Path(__file__).parent / "data" / "pages"

# What each page shows around its tables, and what is chrome (banner, menus, sidebar, footer).
EXPECTED = {
    "news-quarterly-results.html": {
        "kept": ["Quarterly results", "By segment", "Analysts had expected revenue"],
        "dropped": [
            "We use cookies",
            "Accept all",
            "Subscribe for $1 a week",
            "Most read",
            "Five charts that explain",
            "Morning Briefing",
            "All rights reserved",
            "Privacy policy",
        ],
    },
    "investor-relations.html": {
        "kept": ["Financial highlights", "Five-year summary", "Production"],
        "dropped": [
            "uses cookies",
            "Got it!",
            "Our operations",
            "Careers",
            "88 Hay Street",
            "Copyright 2026",
            "Sitemap",
        ],
    },
    "encyclopedia-company.html": {
        "kept": ["Vellum Bank plc is a British commercial bank", "Financial performance"],
        "dropped": [
            "Jump to content",
            "Random article",
            "Donate",
            "Search Openpedia",
            "last edited on",
            "Creative Commons",
            "About Openpedia",
        ],
    },
}


class _Tables(HTMLParser):
    """Every table row of a page as its cells' text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append(" ".join("".join(self._cell).split()))
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def table_rows(html: str) -> list[list[str]]:
    parser = _Tables()
    parser.feed(html)
    return parser.rows


def text_rows(text: str) -> list[list[str]]:
    """The lines of the text that are table rows, as their non-empty cells."""
    return [
        [cell.strip() for cell in line.strip("|").split("|") if cell.strip()]
        for line in text.splitlines()
        if line.startswith("|") and not line.startswith("|---")
    ]


def fetched(names: list[str]) -> dict[str, str]:
    """Each saved page served as text/html on a local server and read back through `fetch`."""

    def handler(name):
        async def respond(request):
            return web.Response(text=(PAGES / name).read_text(), content_type="text/html")

        return respond

    async def scenario():
        base, runner = await serve({f"/{name}": handler(name) for name in names})
        tool = fetch_tool(allow_networks=["127.0.0.1/32"])
        try:
            return {name: (await tool.run({"url": f"{base}/{name}"})) for name in names}
        finally:
            await runner.cleanup()

    results = asyncio.run(scenario())
    assert not any(result.error for result in results.values())
    return {name: result.content for name, result in results.items()}


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return fetched(sorted(EXPECTED))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_table_row_keeps_its_cells_in_order_on_one_line(pages, name):
    rows = table_rows((PAGES / name).read_text())
    assert len(rows) >= 4
    shown = text_rows(pages[name])
    for row in rows:
        # The row's label and every figure of the row, in their columns, on one line.
        assert row in shown, f"{row} not found as one line in:\n{pages[name]}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_page_text_is_its_content_without_banners_menus_or_footers(pages, name):
    text = pages[name]
    html = (PAGES / name).read_text()
    title = html.split("<title>", 1)[1].split("</title>", 1)[0]
    assert text.startswith(f"{title}\n\n")
    for kept in EXPECTED[name]["kept"]:
        assert kept in text
    for dropped in EXPECTED[name]["dropped"]:
        assert dropped in html and dropped not in text, dropped


def test_a_saved_page_read_as_a_file_is_converted_too(tmp_path):
    (tmp_path / "page.html").write_text((PAGES / "news-quarterly-results.html").read_text())
    result = asyncio.run(fetch_tool(root=tmp_path).run({"url": f"file://{tmp_path}/page.html"}))
    assert "| Q2 | 187.9 | 12.6 | 231.7 |" in result.content.splitlines()


def test_pages_without_markup_to_speak_of():
    assert html_to_text("") == "" and html_to_text("<!-- nothing -->") == ""
    assert html_to_text("<p>a fragment</p> <b>with</b> tags") == "a fragment\nwith tags"
    assert html_to_text("just words, no tags") == "just words, no tags"
    assert html_to_text("<html><body><nav><a href='/'>Home</a></nav></body></html>") == "Home"
