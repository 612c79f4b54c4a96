import json

import pytest

from fcsft.errors import UserError
from fcsft.records import Call, Seed
from fcsft.seeds.importers import import_seeds, mine_logs
from fcsft.seeds.stats import seed_stats
from fcsft.text.minhash import NearDuplicates
from fcsft.text.pii import scrub


def test_csv_bad_rows_are_reported_and_the_rest_imports(tmp_path):
    path = tmp_path / "seeds.csv"
    path.write_text(
        "id,question,source,tags,plan\n"
        's1,Revenue of ACME in 2025?,expert,multi_hop,"[{""name"": ""search"", ""arguments"": {""query"": ""ACME""}}]"\n'
        "s2,What is 2+2?,log,no_tool,\n"
        "s3,Bad source row,robot,,\n"
        's4,Bad plan,expert,,"[{""name"": 1}"\n'
        "s5,too,many,fields,here,oops\n"
        "s6,Price of Orrin?,,,\n"
    )
    result = import_seeds([path], source="import", domain="finance")
    assert [seed.id for seed in result.seeds] == ["s1", "s2", "s6"]
    assert result.seeds[0].plan == [Call(name="search", arguments={"query": "ACME"})]
    assert result.seeds[1].no_tool and result.seeds[2].source == "import"
    assert result.problems[0].startswith(f"{path}:4: source: Input should be 'log', 'expert'")
    assert result.problems[1].startswith(f"{path}:5: plan: not valid JSON")
    assert result.problems[2] == f"{path}:6: 6 fields, header has 5"


def test_yaml_and_jsonl_report_lines(tmp_path):
    yml = tmp_path / "seeds.yaml"
    yml.write_text(
        "seeds:\n  - id: y1\n    question: Who runs Orrin?\n  - id: y2\n    qestion: typo\n"
    )
    result = import_seeds([yml])
    assert [s.id for s in result.seeds] == ["y1"]
    assert result.problems == [f"{yml}:4: question: Field required; qestion: unknown field"]
    jl = tmp_path / "seeds.jsonl"
    jl.write_text('{"id": "j1", "question": "q1"}\n{broken\n{"id": "j1", "question": "q2"}\n')
    result = import_seeds([jl])
    assert [s.id for s in result.seeds] == ["j1"]
    assert result.problems == [
        f"{jl}:2: not valid JSON at offset 1: Expecting property name enclosed in double quotes",
        f"{jl}:3: duplicate id 'j1'",
    ]


def test_pii_is_scrubbed_and_numbers_survive():
    text, found = scrub(
        "Email ann@corp.example, call +1 415 555 0134, card 4111-1111-1111-1111, "
        "SSN 078-05-1120. Revenue $1,482.6 million on 2026-10-31, order 4111111111111112"
    )
    assert text == (
        "Email [EMAIL], call [PHONE], card [CARD], SSN [ID]. Revenue $1,482.6 million "
        "on 2026-10-31, order 4111111111111112"
    )  # the last fails Luhn: not a card
    assert found == {"EMAIL": 1, "PHONE": 1, "CARD": 1, "ID": 1}


@pytest.mark.parametrize(
    ("text", "scrubbed", "kind"),
    [
        # IBANs, spaced or not, only when the mod-97 check passes.
        ("Pay DE89 3704 0044 0532 0130 00 today", "Pay [IBAN] today", "IBAN"),
        ("to GB82WEST12345698765432.", "to [IBAN].", "IBAN"),
        ("NL91ABNA0417164300 please", "[IBAN] please", "IBAN"),
        ("bad DE88 3704 0044 0532 0130 00 x", None, None),  # one check digit off
        ("ref DE89370400440532013001 x", None, None),  # last digit off
        # IP addresses: four parts of 0-255, IPv6 with :: or eight groups.
        ("server 192.168.1.20 is down", "server [IP] is down", "IP"),
        ("from fe80::1ff:fe23:4567:890a today", "from [IP] today", "IP"),
        ("host 2001:db8:0:0:0:0:2:1 up", "host [IP] up", "IP"),
        ("version 1.2.3.4.5 shipped", None, None),
        ("256.10.1.1 is no address", None, None),
        ("the call at 10:30:00 ran long", None, None),
        ("margin 12.6 and 187.9 in Q2", None, None),
        # Account numbers after their keyword; amounts are not accounts.
        ("my account number is 12345678", "my account number is [ACCOUNT]", "ACCOUNT"),
        ("acct #: 9876-5432-10 frozen", "acct #: [ACCOUNT] frozen", "ACCOUNT"),
        ("a/c 00123456 at Vellum", "a/c [ACCOUNT] at Vellum", "ACCOUNT"),
        ("exports account for 12% of revenue", None, None),
        ("it accounted for 1204500 shares", None, None),
        ("the account for 1,204,500 shares", None, None),
        ("account 2025 filings", None, None),
        # Street addresses written number first; a year before a company name is not one.
        ("ship to 221 Baker Street, London", "ship to [ADDRESS], London", "ADDRESS"),
        ("at 1600 Pennsylvania Ave NW", "at [ADDRESS] NW", "ADDRESS"),
        ("send it to 12B Harbor Lane, Apt 4 now", "send it to [ADDRESS] now", "ADDRESS"),
        ("In 2025 Harbor Lane Foods recalled peanuts", None, None),
        ("we sold 5 Road Bikes", None, None),
        ("Kestrel Mining Way forward in 12 steps", None, None),
    ],
)
def test_pii_patterns_and_their_near_misses(text, scrubbed, kind):
    clean, found = scrub(text)
    if kind is None:
        assert (clean, found) == (text, {})
    else:
        assert (clean, found) == (scrubbed, {kind: 1})


def test_a_detector_adds_what_patterns_cannot_define_and_presidio_is_optional():
    def names(text):
        start = text.find("Ann Lee")
        return [(start, start + len("Ann Lee"), "PERSON")] if start >= 0 else []

    clean, found = scrub("Ann Lee at 192.168.1.20 asked", names)
    assert (clean, found) == ("[PERSON] at [IP] asked", {"PERSON": 1, "IP": 1})
    # A detector's span over a placeholder the patterns put in is not replaced twice.
    clean, found = scrub("mail ann@corp.example", lambda text: [(5, 12, "URL")])
    assert (clean, found) == ("mail [EMAIL]", {"EMAIL": 1})
    try:
        import presidio_analyzer  # noqa: F401
    except ImportError:
        with pytest.raises(UserError, match=r"pip install 'fcsft\[pii\]'"):
            mine_logs([], pii="presidio")
    with pytest.raises(UserError, match="unknown PII detector 'names'"):
        mine_logs([], pii="names")


def test_mining_logs_takes_user_questions_scrubs_and_dedups(tmp_path):
    logs = tmp_path / "chat.jsonl"
    conversations = [
        [
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello!"},
            {"role": "user", "content": "What was Orrin Dynamics revenue in 2025?"},
            {"role": "assistant", "content": "..."},
            {"role": "user", "content": "thanks"},
            {"role": "user", "content": "Send the figures to a@b.example please"},
        ],
        [{"role": "user", "content": "what was Orrin Dynamics revenue in 2025?"}],
        [{"role": "user", "content": "What was Orrin Dynamics revenue in 2025"}],
        [{"role": "user", "content": "Compare Vellum Bank and Orrin closing prices"}],
    ]
    logs.write_text("".join(json.dumps({"messages": m}) + "\n" for m in conversations) + "[]\n")
    result = mine_logs([logs], domain="finance")
    # A conversation is one seed: the greeting before the question is left out, the two
    # messages sent with no reply between them are one follow-up.
    assert [(s.question, s.followups) for s in result.seeds] == [
        (
            "What was Orrin Dynamics revenue in 2025?",
            ["thanks\nSend the figures to [EMAIL] please"],
        ),
        ("what was Orrin Dynamics revenue in 2025?", []),
        ("Compare Vellum Bank and Orrin closing prices", []),
    ]
    assert all(s.source == "log" for s in result.seeds)
    assert result.duplicates == 1 and result.scrubbed == {"EMAIL": 1}
    assert result.problems == [f"{logs}:5: expected a JSON object, got list"]


def test_a_chat_log_with_follow_ups_imports_as_multi_turn_seeds(tmp_path, capsys):
    from clirun import fcsft_here
    from fcsft.expand.pipeline import seed_task
    from fcsft.expand.vary import vary
    from fcsft.seeds.importers import read_seeds

    logs = tmp_path / "chat.sharegpt.jsonl"
    conversation = [
        {"from": "human", "value": "What was Orrin Dynamics revenue in fiscal 2025?"},
        {"from": "function_call", "value": '{"name": "search", "arguments": {"query": "x"}}'},
        {"from": "observation", "value": "1,482.6 million"},
        {"from": "gpt", "value": "$1,482.6 million."},
        {"from": "human", "value": "Our own was $310.4 million; mail me at ann@corp.example"},
        {"from": "gpt", "value": "Noted."},
        {"from": "human", "value": "What share of Orrin Dynamics revenue is ours?"},
        {"from": "gpt", "value": "20.9%."},
    ]
    logs.write_text(json.dumps({"conversations": conversation}) + "\n")
    out = tmp_path / "seeds.jsonl"
    result = fcsft_here("seeds", "mine", logs, "--out", out, capsys=capsys)
    assert result.returncode == 0, result.stderr
    (seed,) = read_seeds(out)
    assert seed.question == "What was Orrin Dynamics revenue in fiscal 2025?"
    assert seed.followups == [
        "Our own was $310.4 million; mail me at [EMAIL]",
        "What share of Orrin Dynamics revenue is ours?",
    ]
    # The follow-ups travel with the task, and a variation swaps in them what it swaps in
    # the question.
    task = seed_task(seed)
    assert task.followups == seed.followups
    pools = {"company": ["Orrin Dynamics", "Vellum Bank"]}
    varied = [v for v in vary(task, 3, pools) if "Vellum Bank" in v.question]
    assert varied and all(
        v.followups[1] == "What share of Vellum Bank revenue is ours?" for v in varied
    )


def test_stats_warn_when_one_tool_dominates():
    search = Call(name="search", arguments={"query": "x"})
    python = Call(name="python", arguments={"code": "print(1)"})
    seeds = [
        Seed(id=f"s{i}", question="q", source="expert", plan=[search, search]) for i in range(4)
    ]
    seeds.append(Seed(id="p", question="q", source="log", plan=[python]))
    stats = seed_stats(seeds)
    assert stats["by_tool"] == {"search": 8, "python": 1}
    assert stats["plan_length"] == {1: 1, 2: 4}
    assert stats["user_turns"] == {1: 5}
    assert stats["by_source"] == {"expert": 4, "log": 1}
    assert stats["warnings"][0].startswith("search is 89% of planned calls")
    assert "should-not-call" in stats["warnings"][1]


def test_near_duplicates_find_rewordings_not_strangers():
    index = NearDuplicates(threshold=0.7)
    assert index.add("a", "What was Harbor Lane Foods revenue in fiscal 2025?") == (None, 0.0)
    match, score = index.add("b", "what was harbor lane foods revenue in fiscal 2025")
    assert match == "a" and score == 1.0
    assert index.add("c", "Compare the closing prices of Orrin and Vellum")[0] is None


def test_csv_with_a_byte_order_mark_and_a_row_that_is_not_utf8(tmp_path):
    path = tmp_path / "seeds.csv"
    path.write_bytes(
        b"\xef\xbb\xbfid,question\r\n"
        b"c1,Revenue of ACME in 2025?\r\n"
        b"c2,Caf\xe9 prices in Paris?\r\n"
        b"c3,Price of Orrin?\r\n"
    )
    result = import_seeds([path])
    assert [seed.id for seed in result.seeds] == ["c1", "c3"]
    assert result.problems == [f"{path}:3: not valid UTF-8; save the file as UTF-8"]


def test_yaml_seeds_that_are_not_utf8_name_the_line(tmp_path):
    path = tmp_path / "seeds.yaml"
    path.write_bytes(b"seeds:\n  - question: Caf\xe9?\n")
    with pytest.raises(UserError, match=r"seeds.yaml:2: not valid UTF-8 at byte 17"):
        import_seeds([path])


def test_mined_near_duplicates_are_rejected_with_the_seed_they_repeat(tmp_path):
    import yaml

    from fcsft.config import load_config
    from fcsft.jsonl import read_jsonl
    from fcsft.runner.pipeline import Run, run_pipeline

    question = "What was the revenue of Orrin Dynamics in fiscal 2025?"
    logs = [
        {"messages": [{"role": "user", "content": question}]},
        {"messages": [{"role": "user", "content": question + " "}]},
    ]
    (tmp_path / "logs.jsonl").write_text("".join(json.dumps(x) + "\n" for x in logs))
    (tmp_path / "project.yaml").write_text(
        yaml.safe_dump({"run_dir": "run", "seeds": {"logs": ["logs.jsonl"]}})
    )
    run_pipeline(Run(load_config(tmp_path / "project.yaml"), tmp_path), until="seeds")
    (kept,) = read_jsonl(tmp_path / "run" / "seeds" / "out.jsonl")
    (dropped,) = read_jsonl(tmp_path / "run" / "seeds" / "rejected.jsonl")
    assert dropped["reasons"][0]["rule"] == "seeds.near_duplicate"
    assert kept["id"] in dropped["reasons"][0]["reason"]
    assert dropped["record"]["question"] == question
