"""The human review tier: sampling, the decision store, the token-guarded API, applying."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from fcsft.errors import UserError
from fcsft.formats import get_format
from fcsft.jsonl import read_jsonl, write_jsonl
from fcsft.records import FinalAnswer, Meta, Observation, Think, Tool, ToolCall, Trajectory, Verdict
from fcsft.review import (
    ReviewStore,
    Stratum,
    apply_review,
    begin_review,
    draw,
    open_review,
    sample_size,
    summary_line,
)
from fcsft.review.server import bind, build_server, review_url

TOOLS = ("search", "fetch", "python")
EXAMPLE = Path(__file__).parents[1] / "examples" / "trajectories" / "finance.openai.jsonl"


# ------------------------------------------------------------------------- fixtures


def trajectory(ident: str, tool: str | None, how: str = "seed", source: str = "expert") -> dict:
    """An interchange record whose text is full of <tags>, as real trajectories are."""
    steps: list = []
    if tool:
        steps += [
            Think(text=f"I need {tool} for <this> & that."),
            ToolCall(name=tool, arguments={"query": "<b>revenue</b> 2025", "limit": 3}, id="c0"),
            Observation(
                content=f"<result>{ident}: revenue was $1,482.6 million</result>", call_id="c0"
            ),
        ]
    steps.append(FinalAnswer(text=f"Revenue was $1,482.6 million <i>({ident})</i>."))
    record = Trajectory(
        id=ident,
        question=f"What was the revenue of <b>{ident}</b> in 2025?",
        tools=[Tool(name=name, description=f"The {name} tool.") for name in TOOLS],
        steps=steps,
        meta=Meta(how=how, source=source),
    )
    return get_format("openai").render(record)


def rejection(record: dict, rule: str = "logic.grounded", reason: str = "number not found") -> dict:
    verdict = Verdict(stage="validate", rule=rule, passed=False, reason=reason)
    return {"id": record["meta"]["id"], "reasons": [verdict.to_json()], "record": record}


def write_run(run_dir: Path, accepted: list[dict], rejected: list[dict]) -> Path:
    write_jsonl(run_dir / "validate" / "out.jsonl", accepted)
    write_jsonl(run_dir / "validate" / "rejected.jsonl", rejected)
    return run_dir


# stratum (tool, how, source, auto) -> size; sample sizes at 10% are in the comments
STRATA = {
    ("search", "seed", "expert", "accepted"): 15,  # 1.5 rounds half up to 2
    ("python", "rewrite", "log", "accepted"): 14,  # 1.4 -> 1
    ("none", "vary", "import", "accepted"): 5,  # 0.5 -> 1
    ("fetch", "combine", "log", "accepted"): 3,  # 0.3 -> at least 1
    ("search", "seed", "expert", "rejected"): 25,  # 2.5 -> 3
    ("fetch", "combine", "log", "rejected"): 1,  # -> 1
    ("unparsable", "seed", "log", "rejected"): 2,  # -> 1
}


def stratified_run(run_dir: Path, shuffle: int | None = None) -> Path:
    accepted, rejected = [], []
    for (tool, how, source, auto), size in STRATA.items():
        for k in range(size):
            ident = f"{tool}-{how}-{source}-{auto}-{k}"
            if tool == "unparsable":
                record = {"messages": [], "meta": {"id": ident, "how": how, "source": source}}
                rejected.append(rejection(record, "format.parse", "messages: missing or empty"))
                continue
            record = trajectory(ident, None if tool == "none" else tool, how, source)
            (accepted if auto == "accepted" else rejected).append(
                record if auto == "accepted" else rejection(record)
            )
    if shuffle is not None:
        random.Random(shuffle).shuffle(accepted)
        random.Random(shuffle).shuffle(rejected)
    return write_run(run_dir, accepted, rejected)


@contextmanager
def live_server(store: ReviewStore, token: str):
    """The real uvicorn server on 127.0.0.1 in a thread; yields the URL with its token."""
    server = build_server(store, token)
    sock = bind(0)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the review server did not start")
        time.sleep(0.02)
    try:
        yield review_url(sock, token)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# ------------------------------------------------------------------------- sampling


@pytest.mark.parametrize(
    ("population", "expected"),
    [(0, 0), (1, 1), (4, 1), (5, 1), (14, 1), (15, 2), (24, 2), (25, 3), (45, 5), (100, 10)],
)
def test_ten_percent_rounds_half_up_with_at_least_one(population, expected):
    assert sample_size(population, 0.1) == expected


def test_fraction_one_takes_everything_and_bad_fractions_are_refused(tmp_path):
    assert sample_size(7, 1.0) == 7
    stratified_run(tmp_path)
    for fraction in (0, -0.1, 1.5):
        with pytest.raises(UserError, match="fraction"):
            draw(tmp_path / "validate", fraction)


def test_every_stratum_is_represented_at_its_share(tmp_path):
    sample = draw(stratified_run(tmp_path) / "validate", 0.1, seed=0)
    expected = {Stratum(*key): sample_size(size, 0.1) for key, size in STRATA.items()}
    assert dict(sample.sampled()) == expected
    assert dict(sample.population) == {Stratum(*key): size for key, size in STRATA.items()}
    assert len(sample.items) == 2 + 1 + 1 + 1 + 3 + 1 + 1
    for item in sample.items:  # each item is where its id says it belongs
        assert item.id.startswith("-".join(item.stratum) + "-")
    rejected = [item for item in sample.items if item.auto == "rejected"]
    assert all(item.reasons and not item.reasons[0].passed for item in rejected)


def test_the_draw_is_deterministic_and_independent_of_file_order(tmp_path):
    first = draw(stratified_run(tmp_path / "a") / "validate", 0.1, seed=7)
    again = draw(tmp_path / "a" / "validate", 0.1, seed=7)
    shuffled = draw(stratified_run(tmp_path / "b", shuffle=3) / "validate", 0.1, seed=7)
    ids = [item.id for item in first.items]
    assert ids == [item.id for item in again.items]
    assert ids == [item.id for item in shuffled.items]
    other_seeds = {
        tuple(item.id for item in draw(tmp_path / "a" / "validate", 0.1, seed).items)
        for seed in range(5)
    }
    assert len(other_seeds) > 1  # the seed matters
    # review order mixes strata rather than grouping them
    assert [item.stratum for item in first.items] != sorted(item.stratum for item in first.items)


def test_the_validate_stage_output_is_read_as_it_is_written(tmp_path):
    from fcsft.runner.run import run_stage
    from fcsft.validate.stage import ValidateConfig, validate_stage

    run_stage(validate_stage(ValidateConfig()), tmp_path, [EXAMPLE])
    review = begin_review(tmp_path)
    decided = Counter(s.stratum.auto for s in review.store.strata() for _ in range(s.population))
    stats = json.loads((tmp_path / "validate" / "stats.json").read_text())
    assert decided == Counter({"accepted": stats["out"], "rejected": stats["rejected"]}) - Counter()
    assert {s.stratum.tool for s in review.store.strata()} <= {*TOOLS, "none"}


# ------------------------------------------------------------------------- the store


def test_the_store_survives_reopening_and_is_never_redrawn(tmp_path):
    stratified_run(tmp_path)
    review = begin_review(tmp_path, fraction=0.1, seed=1)
    assert review.drawn_now and not review.inputs_changed
    items = review.store.items()
    review.store.decide(items[0].id, "accepted")
    review.store.decide(items[1].id, "rejected", "  the answer ignores the error  ")
    path = tmp_path / "review" / "review.sqlite"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    reopened = begin_review(tmp_path)  # no fraction or seed: the stored ones hold
    assert not reopened.drawn_now
    assert (reopened.info.fraction, reopened.info.seed) == (0.1, 1)
    again = reopened.store.items()
    assert [item.id for item in again] == [item.id for item in items]
    assert (again[0].decision, again[1].decision, again[2].decision) == (
        "accepted",
        "rejected",
        None,
    )
    assert again[1].reason == "the answer ignores the error"
    assert ReviewStore(path).progress() == (2, len(items))
    assert ReviewStore(path).item(items[1].id).record["meta"]["id"] == items[1].id

    with pytest.raises(UserError, match="drawn with seed 1, not 2"):
        begin_review(tmp_path, seed=2)
    with pytest.raises(UserError, match=r"drawn with fraction 0\.1, not 0\.2"):
        begin_review(tmp_path, fraction=0.2)


def test_changed_validate_output_is_reported_not_redrawn(tmp_path):
    stratified_run(tmp_path)
    first = [item.id for item in begin_review(tmp_path).store.items()]
    with (tmp_path / "validate" / "out.jsonl").open("a") as handle:
        handle.write(json.dumps(trajectory("late-arrival", "search")) + "\n")
    review = begin_review(tmp_path)
    assert review.inputs_changed
    assert [item.id for item in review.store.items()] == first


def test_a_decision_changes_and_is_undone_and_unknown_items_are_refused(tmp_path):
    stratified_run(tmp_path)
    store = begin_review(tmp_path).store
    ident = store.items()[0].id
    store.decide(ident, "rejected", "bad")
    assert store.decide(ident, "accepted").decision == "accepted"
    store.undecide(ident)
    assert store.item(ident).decision is None
    with pytest.raises(KeyError):
        store.decide("no-such-id", "accepted")


def test_begin_without_validate_output_says_what_to_run(tmp_path):
    with pytest.raises(UserError, match="run validate first"):
        begin_review(tmp_path)
    with pytest.raises(UserError, match="fcsft review"):
        open_review(tmp_path)


# ------------------------------------------------------------------------- the web API


@pytest.fixture
def client(tmp_path):
    testclient = pytest.importorskip("fastapi.testclient", reason="needs fcsft[review]")
    from fcsft.review.app import create_app

    stratified_run(tmp_path)
    store = begin_review(tmp_path).store
    return testclient.TestClient(create_app(store, "s3cret")), store


def test_every_request_without_the_token_is_forbidden(client):
    http, _ = client
    for path in ("/", "/static/review.js", "/static/review.css", "/api/items"):
        assert http.get(path).status_code == 403
        assert http.get(path, params={"token": "wrong"}).status_code == 403
        assert http.get(path, headers={"X-Review-Token": "s3cre"}).status_code == 403
    ident = http.get("/api/items", params={"token": "s3cret"}).json()["items"][0]["id"]
    refused = http.post(f"/api/items/{ident}/decision", json={"decision": "accepted"})
    assert refused.status_code == 403
    assert "token" in refused.text


def test_the_page_loads_only_from_this_server(client):
    http, _ = client
    page = http.get("/", params={"token": "s3cret"})
    assert page.status_code == 200
    assert 'src="static/review.js?token=s3cret"' in page.text
    assert "http://" not in page.text and "https://" not in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    script = http.get("/static/review.js", params={"token": "s3cret"})
    assert script.headers["content-type"].startswith("text/javascript")
    for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script.text  # record text goes in through text nodes only
    assert http.get("/static/x.js", params={"token": "s3cret"}).status_code == 404


def test_the_api_records_decisions(client):
    http, store = client
    auth = {"X-Review-Token": "s3cret"}
    listing = http.get("/api/items", headers=auth).json()
    assert listing["progress"] == {"reviewed": 0, "total": len(listing["items"])}
    first, second = listing["items"][0]["id"], listing["items"][1]["id"]

    saved = http.post(f"/api/items/{first}/decision", headers=auth, json={"decision": "accepted"})
    assert saved.status_code == 200
    assert saved.json()["progress"]["reviewed"] == 1
    no_reason = {"decision": "rejected", "reason": "  "}
    assert (
        http.post(f"/api/items/{second}/decision", headers=auth, json=no_reason).status_code == 422
    )
    reason = {"decision": "rejected", "reason": "calls <fetch> twice"}
    saved = http.post(f"/api/items/{second}/decision", headers=auth, json=reason)
    assert saved.json()["item"]["reason"] == "calls <fetch> twice"
    assert store.item(first).decision == "accepted"
    assert (store.item(second).decision, store.item(second).reason) == (
        "rejected",
        "calls <fetch> twice",
    )
    bad = {"decision": "maybe"}
    assert http.post(f"/api/items/{first}/decision", headers=auth, json=bad).status_code == 422
    missing = http.post("/api/items/nope/decision", headers=auth, json={"decision": "accepted"})
    assert missing.status_code == 404

    undone = http.delete(f"/api/items/{first}/decision", headers=auth).json()
    assert undone["item"]["decision"] is None and undone["progress"]["reviewed"] == 1


def test_the_view_has_the_parsed_trajectory_or_the_raw_record(client):
    http, store = client
    auth = {"X-Review-Token": "s3cret"}
    by_tool = {item.stratum.tool: item for item in store.items()}
    view = http.get(f"/api/items/{by_tool['search'].id}/view", headers=auth).json()
    steps = view["trajectory"]["steps"]
    assert [step["type"] for step in steps] == ["think", "tool_call", "observation", "final_answer"]
    assert steps[1]["arguments"] == {"query": "<b>revenue</b> 2025", "limit": 3}
    assert view["trajectory"]["question"].startswith("What was the revenue of <b>")
    broken = http.get(f"/api/items/{by_tool['unparsable'].id}/view", headers=auth).json()
    assert broken["trajectory"] is None and "messages" in broken["parse_error"]
    assert broken["reasons"][0]["rule"] == "format.parse"


def test_the_real_server_listens_on_loopback_behind_the_token(tmp_path):
    pytest.importorskip("uvicorn", reason="needs fcsft[review]")
    stratified_run(tmp_path)
    store = begin_review(tmp_path).store
    with live_server(store, "tok") as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/?token=tok")
        with urllib.request.urlopen(url, timeout=5) as page:
            assert "fcsft review" in page.read().decode()
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url.split("?")[0], timeout=5)
        assert refused.value.code == 403
        ident = store.items()[0].id
        request = urllib.request.Request(
            url.split("?")[0] + f"api/items/{ident}/decision",
            data=json.dumps({"decision": "accepted"}).encode(),
            headers={"X-Review-Token": "tok", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            assert json.load(response)["progress"]["reviewed"] == 1
    assert store.item(ident).decision == "accepted"


# ------------------------------------------------------------------------- applying


def small_run(run_dir: Path) -> ReviewStore:
    """6 auto-accepted, 4 auto-rejected, everything sampled, and known human decisions."""
    accepted = [trajectory(f"a{k}", "search") for k in range(1, 7)]
    rejected = [rejection(trajectory(f"r{k}", "python", "rewrite", "log")) for k in range(1, 5)]
    write_run(run_dir, accepted, rejected)
    store = begin_review(run_dir, fraction=1.0).store
    for ident in ("a1", "a2", "a3", "a4", "r1"):
        store.decide(ident, "accepted")
    store.decide("a5", "rejected", "the answer's number is not in any observation")
    store.decide("r2", "rejected", "agreed with the rule")
    store.decide("r3", "rejected", "agreed with the rule")
    return store  # a6 and r4 are left pending


def test_apply_removes_human_rejected_records_and_reports_exact_numbers(tmp_path):
    small_run(tmp_path)
    report = apply_review(tmp_path)

    kept = [obj["meta"]["id"] for obj in read_jsonl(tmp_path / "review" / "out.jsonl")]
    assert kept == ["a1", "a2", "a3", "a4", "a6"]  # validate's order, a5 gone, r* never added
    (dropped,) = read_jsonl(tmp_path / "review" / "rejected.jsonl")
    assert dropped["id"] == "a5" and dropped["record"]["meta"]["id"] == "a5"
    assert dropped["reasons"] == [
        {
            "stage": "review",
            "rule": "review.human",
            "passed": False,
            "reason": "the answer's number is not in any observation",
        }
    ]

    # precision 4/5: Wilson 95% = (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    assert report["precision"] == {"k": 4, "n": 5, "value": 0.8, "ci95": [0.3755, 0.9638]}
    # false rejection 1/3: one of three reviewed auto-rejections a person would keep
    assert report["false_rejection"] == {
        "k": 1,
        "n": 3,
        "value": 0.3333,
        "ci95": [0.0615, 0.7923],
    }
    assert report["reviewed"] == {
        "total": 8,
        "pending": 2,
        "human_accepted": 5,
        "human_rejected": 3,
    }
    assert report["sample"]["items"] == 10
    assert report["sample"]["population"] == {"accepted": 6, "rejected": 4}
    assert report["out"] == {"auto_accepted": 6, "removed": 1, "written": 5}
    assert report["strata"] == [
        {
            "tool": "python",
            "how": "rewrite",
            "source": "log",
            "auto": "rejected",
            "population": 4,
            "sampled": 4,
            "reviewed": 3,
            "human_accepted": 1,
            "human_rejected": 2,
        },
        {
            "tool": "search",
            "how": "seed",
            "source": "expert",
            "auto": "accepted",
            "population": 6,
            "sampled": 6,
            "reviewed": 5,
            "human_accepted": 4,
            "human_rejected": 1,
        },
    ]
    assert json.loads((tmp_path / "review" / "report.json").read_text()) == report
    stats = json.loads((tmp_path / "review" / "stats.json").read_text())
    assert (stats["in"], stats["out"], stats["rejected"]) == (6, 5, 1)
    assert stats["reasons"] == {"review.human": 1}
    assert summary_line(report) == (
        "reviewed 8/10 (2 pending); precision 80.0% (4/5, 95% CI 37.6%-96.4%); "
        "false rejections 33.3% (1/3, 95% CI 6.1%-79.2%); 1 removed, 5 kept"
    )


def test_apply_before_any_review_has_no_estimate_rather_than_zero(tmp_path):
    write_run(tmp_path, [trajectory("a1", "search")], [])
    begin_review(tmp_path)
    report = apply_review(tmp_path)
    assert report["precision"]["n"] == 0
    assert "precision n/a (none reviewed)" in summary_line(report)
    assert report["out"] == {"auto_accepted": 1, "removed": 0, "written": 1}


def test_the_command_applies_and_prints_one_line(tmp_path):
    def fcsft(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "fcsft.cli", "review", *map(str, args)]
        return subprocess.run(command, capture_output=True, text=True, timeout=60)

    refused = fcsft(tmp_path, "--apply")
    assert refused.returncode == 2
    assert refused.stderr.strip().startswith("error: ") and "Traceback" not in refused.stderr
    small_run(tmp_path)
    result = fcsft(tmp_path, "--apply")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("reviewed 8/10 (2 pending); precision 80.0% (4/5")
    assert len(result.stdout.strip().splitlines()) == 1
    assert (tmp_path / "review" / "report.json").exists()
