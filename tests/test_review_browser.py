"""The review page in a real browser: keyboard only, decisions kept across a reload.

Needs Debian's chromium (`apt-get install chromium`) and `pip install playwright`; playwright
drives the system binary, so no browser download is involved. Without either the test is
skipped and says which is missing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install playwright"
)
pytest.importorskip("uvicorn", reason="the review server needs fcsft[review]: uvicorn")
pytest.importorskip("fastapi", reason="the review server needs fcsft[review]: fastapi")

from fcsft.review import ReviewStore, begin_review  # noqa: E402
from test_review import live_server, rejection, trajectory, write_run  # noqa: E402  (conftest path)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).parents[1] / "test-artifacts" / "review.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REASON = "answer cites <b>1,482.6</b> without a source"


@pytest.fixture
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


def wait_for_text(page, selector: str, text: str) -> None:
    sync_api.expect(page.locator(selector)).to_contain_text(text, timeout=5000)


def test_keyboard_review_survives_a_reload(tmp_path, browser):
    accepted = [trajectory(f"acc-{k}", "search") for k in range(4)]
    rejected = [rejection(trajectory(f"rej-{k}", "python", "vary", "log")) for k in range(2)]
    write_run(tmp_path, accepted, rejected)
    store = begin_review(tmp_path, fraction=1.0).store
    order = [item.id for item in store.items()]
    total = len(order)

    with live_server(store, "browser-token") as url:
        base = url.split("?")[0]
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)
        wait_for_text(page, "#item h2", f"#1 {order[0]}")
        wait_for_text(page, "#progress", f"0 / {total} reviewed")

        # Record text is shown as written, never interpreted as markup.
        question = page.locator(".question")
        sync_api.expect(question).to_contain_text(f"<b>{order[0]}</b>")
        assert question.locator("b").count() == 0

        page.keyboard.press("a")
        wait_for_text(page, "#progress", f"1 / {total} reviewed")
        wait_for_text(page, "#item h2", f"#2 {order[1]}")

        page.keyboard.press("r")
        sync_api.expect(page.locator("#reason")).to_be_focused()
        page.keyboard.type(REASON)
        page.keyboard.press("Enter")
        wait_for_text(page, "#progress", f"2 / {total} reviewed")
        wait_for_text(page, "#item h2", f"#3 {order[2]}")

        page.keyboard.press("a")
        wait_for_text(page, "#progress", f"3 / {total} reviewed")

        page.reload()
        wait_for_text(page, "#progress", f"3 / {total} reviewed")
        expected = ["accepted", "rejected", "accepted"] + ["pending"] * (total - 3)
        for ident, decision in zip(order, expected, strict=True):
            entry = page.locator(f'#list button[data-id="{ident}"]')
            sync_api.expect(entry).to_have_attribute("data-decision", decision)

        # Back to the rejected one with the keyboard: its reason is on the page, as typed.
        wait_for_text(page, "#item h2", f"#4 {order[3]}")
        page.keyboard.press("k")
        page.keyboard.press("ArrowUp")
        wait_for_text(page, "#item h2", f"#2 {order[1]}")
        wait_for_text(page, "#item .decision", REASON)

        # Observations start folded and open with `o`.
        observation = page.locator("#item details.observation").first
        sync_api.expect(observation.locator("pre.content")).to_be_hidden()
        page.keyboard.press("o")
        sync_api.expect(observation.locator("pre.content")).to_be_visible()

        shown = page.locator("#item").inner_text()
        assert "null" not in shown and "undefined" not in shown

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        assert requested and all(address.startswith(base) for address in requested)

    saved = {item.id: (item.decision, item.reason) for item in ReviewStore(store.path).items()}
    assert saved[order[0]] == ("accepted", "")
    assert saved[order[1]] == ("rejected", REASON)
    assert saved[order[2]] == ("accepted", "")
    assert all(saved[ident] == (None, "") for ident in order[3:])
    data = SCREENSHOT.read_bytes()
    assert len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)
