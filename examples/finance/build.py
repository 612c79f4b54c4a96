"""Writes the fictional finance world under docs/ and its seed questions (seeds.jsonl).

Run: python examples/finance/build.py   (the output is committed; this keeps it consistent)
Every company, person, number and event here is invented for fcsft's examples and tests.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).parent
DOCS = HERE / "docs"

COMPANIES = [
    # name, slug, ticker, sector, city, ceo, rev24, rev25, net25, margin25, employees
    (
        "Orrin Dynamics",
        "orrin-dynamics",
        "ORDY",
        "industrial robotics",
        "Tallbrook",
        "Mara Quell",
        712.3,
        812.4,
        61.2,
        11.8,
        3120,
    ),
    (
        "Vellum Bank",
        "vellum-bank",
        "VLMB",
        "retail banking",
        "Porthaven",
        "Idris Okonkwo-Lane",
        1804.5,
        1930.0,
        402.7,
        27.4,
        8450,
    ),
    (
        "Harbor Lane Foods",
        "harbor-lane-foods",
        "HLFD",
        "packaged foods",
        "Minsford",
        "Greta Halvorsen",
        1301.9,
        1482.6,
        88.9,
        7.6,
        5630,
    ),
    (
        "Kestrel Mining",
        "kestrel-mining",
        "KSTM",
        "copper mining",
        "Redcliff",
        "Tomas Ferreira",
        512.0,
        455.9,
        -23.4,
        -3.1,
        2210,
    ),
    (
        "Juniper Rail",
        "juniper-rail",
        "JNPR",
        "freight rail",
        "Elmstead",
        "Priya Ramaswamy",
        966.7,
        1011.2,
        120.5,
        15.9,
        6040,
    ),
    (
        "Sable Pharmaceuticals",
        "sable-pharmaceuticals",
        "SBLP",
        "generic medicines",
        "Northgate",
        "Lucien Avery",
        388.4,
        451.0,
        52.3,
        14.2,
        1480,
    ),
]


# Further companies, drawn from these parts by a fixed seed, so that the example has enough
# held-out families for its evaluation to tell a trained model from the base.
FIRST = [
    "Alder",
    "Brisk",
    "Cobalt",
    "Dunmore",
    "Ember",
    "Fallow",
    "Granite",
    "Hollis",
    "Ivory",
    "Lumen",
    "Marlow",
    "Nettle",
    "Onyx",
    "Pike",
    "Quarry",
    "Rowan",
    "Tamsin",
    "Wexford",
]
SECTORS = [
    ("Logistics", "freight logistics"),
    ("Energy", "renewable energy"),
    ("Software", "business software"),
    ("Textiles", "technical textiles"),
    ("Insurance", "property insurance"),
    ("Shipping", "container shipping"),
    ("Chemicals", "specialty chemicals"),
    ("Telecom", "mobile networks"),
    ("Retail", "home furnishing retail"),
    ("Airways", "regional aviation"),
    ("Steel", "flat steel"),
    ("Health", "diagnostic laboratories"),
]
CITIES = [
    "Ashcombe",
    "Brackenford",
    "Caldmoor",
    "Dunhaven",
    "Eastwick",
    "Fernhollow",
    "Glenmarsh",
    "Hartwell",
    "Ironbridge",
    "Kingsreach",
    "Lowmere",
    "Millbrook",
]
GIVEN = [
    "Ada",
    "Bram",
    "Celia",
    "Dov",
    "Elin",
    "Farid",
    "Gwen",
    "Hugo",
    "Imke",
    "Jonas",
    "Keira",
    "Leon",
    "Mina",
    "Niko",
    "Oona",
    "Pavel",
    "Rhea",
    "Soren",
]
FAMILY = [
    "Ashdown",
    "Brennik",
    "Castell",
    "Dimova",
    "Eberle",
    "Fontaine",
    "Galvez",
    "Holm",
    "Iversen",
    "Juarez",
    "Kowal",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quist",
    "Rasku",
]


def drawn_companies(count: int, seed: int = 2026) -> list[tuple]:
    """`count` companies in COMPANIES' layout, none sharing a name or ticker with another."""
    rng = random.Random(seed)
    taken = {row[2] for row in COMPANIES}
    out = []
    for first in rng.sample(FIRST, count):
        suffix, sector = rng.choice(SECTORS)
        name = f"{first} {suffix}"
        ticker = (first[:2] + suffix[:2]).upper()
        while ticker in taken:
            ticker = ticker[:3] + rng.choice("XYZQ")
        taken.add(ticker)
        rev24 = round(rng.uniform(150, 2500), 1)
        rev25 = round(rev24 * (1 + rng.uniform(-0.15, 0.25)), 1)
        margin = round(rng.uniform(-5, 25), 1)
        net = round(rev25 * margin / 100 * rng.uniform(0.6, 0.9), 1)
        ceo = f"{rng.choice(GIVEN)} {rng.choice(FAMILY)}"
        staff = rng.randrange(400, 12000, 10)
        slug = name.lower().replace(" ", "-")
        out.append(
            (name, slug, ticker, sector, rng.choice(CITIES), ceo, rev24, rev25, net, margin, staff)
        )
    return out


COMPANIES = COMPANIES + drawn_companies(18)


def prices(seed: int, start: float) -> list[tuple[str, float]]:
    rng = random.Random(seed)
    days = [
        f"2026-10-{d:02d}"
        for d in range(1, 32)
        if __import__("datetime").date(2026, 10, d).weekday() < 5
    ]
    value, rows = start, []
    for day in days:
        value = round(value * (1 + rng.uniform(-0.02, 0.021)), 2)
        rows.append((day, value))
    return rows


def main() -> None:
    for folder in ("filings", "prices", "news"):
        (DOCS / folder).mkdir(parents=True, exist_ok=True)
    closes = {}
    for k, (name, slug, ticker, sector, city, ceo, r24, r25, net, margin, staff) in enumerate(
        COMPANIES
    ):
        growth = (r25 / r24 - 1) * 100
        (DOCS / "filings" / f"{slug}-annual-report-2025.md").write_text(
            f"# {name} ({ticker}) annual report, fiscal 2025\n\n"
            f"{name} is a {sector} company headquartered in {city}. Chief executive officer: "
            f"{ceo}. Employees at year end: {staff:,}.\n\n"
            f"## Results\n\nRevenue for fiscal 2025 was ${r25:,.1f} million, compared with "
            f"${r24:,.1f} million in fiscal 2024. Net income was ${net:,.1f} million and the "
            f"operating margin was {margin}%.\n\n"
            f"## Outlook\n\nManagement expects {sector} demand to stay "
            f"{'firm' if growth > 0 else 'weak'} through fiscal 2026.\n"
        )
        rows = prices(k, 20 + 17 * k)
        closes[name] = rows
        (DOCS / "prices" / f"{slug}.csv").write_text(
            "date,close\n" + "".join(f"{d},{c:.2f}\n" for d, c in rows)
        )
    news = [
        (
            "2026-10-06",
            "orrin-dynamics-vellum-credit-line",
            "Orrin Dynamics signs credit line with Vellum Bank",
            "Orrin Dynamics agreed a $150 million revolving credit line with Vellum Bank to fund a "
            "new robotics plant in Tallbrook.",
        ),
        (
            "2026-10-09",
            "kestrel-mining-ceo-change",
            "Kestrel Mining names new chief executive",
            "Kestrel Mining said Tomas Ferreira will take over as chief executive after revenue fell "
            "to $455.9 million in fiscal 2025.",
        ),
        (
            "2026-10-14",
            "harbor-lane-recall",
            "Harbor Lane Foods recalls one soup line",
            "Harbor Lane Foods recalled its tomato basil soup after a labelling error; the company "
            "said the recall would cost about $4.2 million.",
        ),
        (
            "2026-10-20",
            "juniper-rail-guidance",
            "Juniper Rail raises guidance",
            "Juniper Rail raised its fiscal 2026 revenue guidance to $1,080 million, citing "
            "stronger grain shipments.",
        ),
        (
            "2026-10-23",
            "sable-acquires-clinic-chain",
            "Sable Pharmaceuticals buys a clinic chain",
            "Sable Pharmaceuticals agreed to acquire the Brightwell clinic chain for $96 million "
            "in cash.",
        ),
        (
            "2026-10-27",
            "harbor-lane-growth-claim",
            "Harbor Lane Foods says revenue rose 14%",
            "At its investor day Harbor Lane Foods said fiscal 2025 revenue rose about 14% to "
            "$1,482.6 million.",
        ),
    ]
    for date, slug, title, body in news:
        (DOCS / "news" / f"{date}-{slug}.md").write_text(f"# {title}\n\n{date}. {body}\n")
    (DOCS / "index.md").write_text(
        f"# Index\n\nfilings/: fiscal 2025 annual reports of {len(COMPANIES)} listed companies.\n"
        "prices/: daily closing prices for October 2026, one CSV per company.\n"
        "news/: dated news items.\n"
    )
    write_seeds(closes)


def write_seeds(closes: dict[str, list[tuple[str, float]]]) -> None:
    seeds = []

    def add(question, source, plan, tags=()):
        seeds.append(
            {
                "id": f"fin-{len(seeds) + 1:03d}",
                "question": question,
                "source": source,
                "domain": "finance",
                "plan": plan,
                "tags": list(tags),
            }
        )

    for name, slug, *_rest in COMPANIES:
        r24, r25 = _rest[4], _rest[5]
        add(
            f"What was {name}'s revenue in fiscal 2025?",
            "log",
            [{"name": "search", "arguments": {"query": f"{name} revenue fiscal 2025"}}],
        )
        add(
            f"By how many percent did {name}'s revenue change from fiscal 2024 to fiscal 2025?",
            "expert",
            [
                {"name": "search", "arguments": {"query": f"{name} revenue fiscal 2025 2024"}},
                {"name": "python", "arguments": {"code": f"print(round(({r25}/{r24}-1)*100, 2))"}},
            ],
            ["compute", "multi_hop"],
        )
        add(
            f"what was the last closing price of {name} in october 2026",
            "log",
            [{"name": "fetch", "arguments": {"url": f"file:///prices/{slug}.csv"}}],
            ["real_time"],
        )
    for name, *_rest in COMPANIES:
        for question, query in (
            (f"Who is the chief executive of {name}?", f"{name} chief executive"),
            (f"How many employees did {name} have at the end of fiscal 2025?", f"{name} employees"),
            (f"What was {name}'s net income in fiscal 2025?", f"{name} net income fiscal 2025"),
        ):
            add(question, "log", [{"name": "search", "arguments": {"query": query}}])
    pairs = [(0, 1), (2, 4), (3, 5)]
    for a, b in pairs:
        first, second = COMPANIES[a], COMPANIES[b]
        add(
            f"Compare the latest closing prices of {first[0]} and {second[0]}: which is higher, "
            "and by how much?",
            "expert",
            [
                {"name": "fetch", "arguments": {"url": f"file:///prices/{first[1]}.csv"}},
                {"name": "fetch", "arguments": {"url": f"file:///prices/{second[1]}.csv"}},
                {
                    "name": "python",
                    "arguments": {
                        "code": f"print(round(abs({closes[first[0]][-1][1]}"
                        f" - {closes[second[0]][-1][1]}), 2))"
                    },
                },
            ],
            ["compute", "real_time"],
        )
    add(
        "Harbor Lane Foods claims its revenue rose 14% in fiscal 2025. Does its annual report "
        "support that?",
        "expert",
        [
            {"name": "search", "arguments": {"query": "Harbor Lane Foods revenue rose 14%"}},
            {"name": "search", "arguments": {"query": "Harbor Lane Foods annual report revenue"}},
            {"name": "python", "arguments": {"code": "print(round((1482.6/1301.9-1)*100, 2))"}},
        ],
        ["cross_check", "multi_hop"],
    )
    add(
        "Which bank gave Orrin Dynamics a credit line, and what was that bank's net income in "
        "fiscal 2025?",
        "expert",
        [
            {"name": "search", "arguments": {"query": "Orrin Dynamics credit line bank"}},
            {"name": "search", "arguments": {"query": "Vellum Bank net income fiscal 2025"}},
        ],
        ["multi_hop"],
    )
    add(
        "How much did Sable Pharmaceuticals pay for the Brightwell clinic chain?",
        "log",
        [{"name": "search", "arguments": {"query": "Sable Pharmaceuticals Brightwell"}}],
    )
    add(
        "juniper rail new revenue guidance?",
        "log",
        [{"name": "search", "arguments": {"query": "Juniper Rail guidance"}}],
    )
    add(
        "What is the average closing price of Vellum Bank over October 2026?",
        "expert",
        [
            {"name": "fetch", "arguments": {"url": "file:///prices/vellum-bank.csv"}},
            {
                "name": "python",
                "arguments": {
                    "code": "import statistics\nprint(round(statistics."
                    "mean([" + ", ".join(f"{c}" for _, c in closes["Vellum Bank"]) + "]), 2))"
                },
            },
        ],
        ["compute"],
    )
    for question in (
        "What is 15% of 240?",
        "What does EBITDA stand for?",
        "Hi, thanks for the help earlier!",
        "Will Orrin Dynamics stock go up next year?",
        "What is 12 times 12?",
    ):
        add(question, "log", [], ["no_tool"])
    # A seeded shuffle, so that `seeds.limit` (which keeps the first seeds) keeps every kind.
    random.Random(0).shuffle(seeds)
    for number, seed in enumerate(seeds, 1):
        seed["id"] = f"fin-{number:03d}"
    with (HERE / "seeds.jsonl").open("w") as handle:
        for seed in seeds:
            handle.write(json.dumps(seed, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
