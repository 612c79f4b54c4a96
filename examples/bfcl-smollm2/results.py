"""Write docs/results.md and docs/results.json from the proof experiment's run directory.

    python examples/bfcl-smollm2/results.py runs/bfcl-smollm2

Every figure is read from a file the run wrote (see run.sh): report.json of each eval
directory (rates, the dev/test split, BFCL's own checker), compare.json of each comparison
(paired differences, MMLU), the stages' stats.json, curate/contamination.jsonl, each training
run's model/fcsft.json, dev/*/report.json for the choices made on dev, and commands.jsonl for
the commands as they ran and the time they took. The only numbers typed here are the issue's
targets (TARGETS). The comparisons' plots are copied next to the page.

The tuned model is trained once per seed: its figure is the mean over seeds, with the lowest
and highest seed beside it. The base model is asked in every form in BASE_FORMS; per
category the form that scores best is the one the tuned model is compared with.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from fcsft.evaluate.report import difference_text, headline_metric
from fcsft.files import with_block, write_text
from fcsft.jsonl import read_jsonl, write_json

DOCS = Path(__file__).resolve().parents[2] / "docs"
TRIED = Path(__file__).resolve().parent / "tried"  # choose.py --keep: each recipe's dev study
BASE_FORMS = ("tagged", "bfcl", "bfcl-fewshot")
CATEGORIES = ("simple_python", "multiple", "parallel", "irrelevance")
TARGETS = {  # (category, metric): the least the tuned model's mean must reach
    ("simple_python", "full_call"): 0.40,
    ("multiple", "full_call"): 0.30,
    ("parallel", "full_call"): 0.10,
    ("irrelevance", "no_call"): 0.80,
    ("simple_python", "called"): 0.85,
}
TARGET_AGREEMENT = 0.995  # BFCL's own checker and fcsft's, over every BFCL prediction
NAMES = {"full_call": "AST accuracy", "no_call": "no-call accuracy", "called": "call rate"}


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


class Run:
    """The run directory's files, read once."""

    def __init__(self, root: Path):
        self.root = root
        self.seeds = sorted(
            int(m.group(1))
            for p in root.glob("eval-tuned-s*")
            if (m := re.fullmatch(r"eval-tuned-s(\d+)", p.name))
        )
        self.base = {form: load(root / f"eval-base-{form}" / "report.json") for form in BASE_FORMS}
        self.base = {form: report for form, report in self.base.items() if report}
        self.tuned = {s: load(root / f"eval-tuned-s{s}" / "report.json") for s in self.seeds}
        self.compares = {
            (form, s): load(root / f"compare-{form}-s{s}" / "compare.json")
            for form in self.base
            for s in self.seeds
        }
        self.layers = {s: load(root / f"compare-layers-s{s}" / "compare.json") for s in self.seeds}
        self.commands = (
            list(read_jsonl(root / "commands.jsonl")) if (root / "commands.jsonl").exists() else []
        )

    def rate(self, report: dict[str, Any], category: str, metric: str) -> float | None:
        return report.get("layers", {}).get(category, {}).get(metric, {}).get("rate")

    def tuned_rates(self, category: str, metric: str) -> list[float]:
        rates = [self.rate(self.tuned[s], category, metric) for s in self.seeds]
        return [r for r in rates if r is not None]

    def best_form(self, category: str) -> str | None:
        """The base form with the highest headline rate on this category (first on a tie)."""
        metric = "no_call" if category == "irrelevance" else "full_call"
        scored = [(self.rate(r, category, metric), form) for form, r in self.base.items()]
        scored = [(rate, form) for rate, form in scored if rate is not None]
        return max(scored, key=lambda pair: pair[0])[1] if scored else None

    def split(self) -> dict[str, Any]:
        """The split every BFCL evaluation asked; a run that mixed parts is refused."""
        records = [r["split"] for r in (*self.base.values(), *self.tuned.values()) if "split" in r]
        parts = {record["part"] for record in records}
        if len(parts) > 1:
            raise SystemExit(f"{self.root}: evaluations asked different parts {sorted(parts)}")
        return records[0] if records else {}


def mean_and_range(rates: list[float]) -> tuple[float | None, float | None, float | None]:
    if not rates:
        return None, None, None
    return sum(rates) / len(rates), min(rates), max(rates)


def tuned_text(rates: list[float]) -> str:
    mean, low, high = mean_and_range(rates)
    if mean is None:
        return "-"
    return f"{mean:.1%} ({low:.1%} to {high:.1%})" if len(rates) > 1 else f"{mean:.1%}"


def mmlu_cells(run: Run) -> dict[int, dict[str, Any]]:
    """Per seed, the MMLU comparison cell of the form that counts (from the tagged base)."""
    out = {}
    for seed in run.seeds:
        mmlu = run.compares.get(("tagged", seed), {}).get("mmlu", {})
        if mmlu.get("counts"):
            out[seed] = mmlu[mmlu["counts"]] | {"form": mmlu["counts"], "margin": mmlu["margin"]}
    return out


def mmlu_envelope(cells: dict[int, dict[str, Any]]) -> tuple[float | None, float | None]:
    """The lowest low and highest high of the seeds' intervals (None if any has none)."""
    lows = [c["ci95_low"] for c in cells.values()]
    highs = [c["ci95_high"] for c in cells.values()]
    if not cells or None in lows or None in highs:
        return None, None
    return min(lows), max(highs)


def official(run: Run) -> tuple[int, int, list[tuple[str, dict[str, Any]]], str | None]:
    """(agree, n, [(run name, disagreement)], checker) over every BFCL evaluation."""
    agree = n = 0
    rows, checker = [], None
    named = [(f"base {form}", r) for form, r in run.base.items()]
    named += [(f"tuned seed {s}", run.tuned[s]) for s in run.seeds]
    for name, report in named:
        section = report.get("official") or {}
        if "n" in section:
            agree, n, checker = agree + section["agree"], n + section["n"], section["checker"]
            rows += [(name, row) for row in section["disagreements"]]
    return agree, n, rows, checker


def headline(run: Run) -> dict[str, Any]:
    """The figures of docs/results.json (fractions; tuned = mean over seeds)."""
    split = run.split()
    figures: dict[str, Any] = {"split": split.get("part"), "seeds": run.seeds}
    figures["simple_python_n"] = (
        run.tuned[run.seeds[0]]["layers"]["simple_python"]["full_call"]["n"] if run.seeds else None
    )
    ranges, base = {}, {}
    keys = {
        "simple_python_full_call": ("simple_python", "full_call"),
        "multiple_full_call": ("multiple", "full_call"),
        "parallel_full_call": ("parallel", "full_call"),
        "irrelevance_no_call": ("irrelevance", "no_call"),
        "simple_python_call_rate": ("simple_python", "called"),
    }
    for key, (category, metric) in keys.items():
        mean, low, high = mean_and_range(run.tuned_rates(category, metric))
        figures[key] = None if mean is None else round(mean, 4)
        ranges[key] = [low, high]
        form = run.best_form(category)
        base[key] = run.rate(run.base[form], category, metric) if form else None
    cells = mmlu_cells(run)
    figures["mmlu_n"] = next(iter(cells.values()))["n"] if cells else None
    low, high = mmlu_envelope(cells)
    figures["mmlu_diff_low"] = None if low is None else round(low, 4)
    figures["mmlu_diff_high"] = None if high is None else round(high, 4)
    agree, n, _, _ = official(run)
    figures["official_agreement"] = round(agree / n, 5) if n else None
    figures["ranges"] = ranges
    figures["base"] = base
    figures["base_forms"] = {c: run.best_form(c) for c in CATEGORIES}
    figures["wall_s"] = round(sum(c["wall_s"] for c in run.commands), 1)
    return figures


def targets(run: Run, figures: dict[str, Any]) -> list[str]:
    lines = ["## Targets", ""]
    for (category, metric), target in TARGETS.items():
        mean, _, _ = mean_and_range(run.tuned_rates(category, metric))
        if mean is None:
            continue
        form = run.best_form(category)
        base = run.rate(run.base[form], category, metric) if form else None
        lines.append(
            f"- {category} {NAMES[metric]} >= {target:.0%}: tuned "
            f"{tuned_text(run.tuned_rates(category, metric))}, base {pct(base)} ({form}): "
            f"{'met' if mean >= target else 'NOT met'}"
        )
    cells = mmlu_cells(run)
    if cells:
        low, high = figures["mmlu_diff_low"], figures["mmlu_diff_high"]
        margin = next(iter(cells.values()))["margin"]
        verdict = "not judged (no interval)"
        if low is not None:
            inside = -margin <= low and high <= margin
            verdict = f"[{low:+.1%}, {high:+.1%}]: {'met' if inside else 'NOT met'}"
        lines.append(
            f"- MMLU ({next(iter(cells.values()))['form']}, {figures['mmlu_n']} questions): "
            f"every seed's 95% interval of tuned minus base inside ±{margin:.0%}: {verdict}"
        )
    agree, n, _, _ = official(run)
    if n:
        lines.append(
            f"- BFCL's own checker agrees with fcsft's on >= {TARGET_AGREEMENT:.1%} of the "
            f"predictions: {agree / n:.2%} ({agree} of {n}): "
            f"{'met' if agree / n >= TARGET_AGREEMENT else 'NOT met'}"
        )
    return [*lines, ""]


def bfcl_tables(run: Run) -> list[str]:
    split = run.split()
    sizes = ", ".join(
        f"{category} {split['asked'][category]} of {sum(sizes.values())}"
        for category, sizes in split.get("sizes", {}).items()
    )
    lines = [
        f"## BFCL ({split.get('part')} part)",
        "",
        f"Each category was split once into dev ({split.get('dev_share', 0):.0%}) and test by a "
        f"keyed hash of the item id (`{split.get('seed')}`); every choice was made on dev and "
        f"these figures are the {split.get('part')} part: {sizes} items. AST accuracy is "
        "scored by fcsft's scorer, with BFCL's own checker beside it (below); the call rate is "
        "the share of items needing a call where the model called at all, the other side of "
        "no-call accuracy.",
        "",
        "| category | metric | n | "
        + " | ".join(f"base {f}" for f in run.base)
        + " | tuned (seeds: mean, lowest to highest) |",
        "|---|---|---|" + "---|" * len(run.base) + "---|",
    ]
    for category in CATEGORIES:
        metrics = ("no_call",) if category == "irrelevance" else ("full_call", "called")
        for metric in metrics:
            rates = run.tuned_rates(category, metric)
            if not rates:
                continue
            n = run.tuned[run.seeds[0]]["layers"][category][metric]["n"]
            base = " | ".join(pct(run.rate(r, category, metric)) for r in run.base.values())
            lines.append(f"| {category} | {NAMES[metric]} | {n} | {base} | {tuned_text(rates)} |")
    lines += [
        "",
        "Tuned against the base's best form, seed by seed (Newcombe's paired 95% interval, "
        "McNemar's exact p):",
        "",
        "| category | base form | seed | difference [95% CI] | McNemar p |",
        "|---|---|---|---|---|",
    ]
    for category in CATEGORIES:
        form = run.best_form(category)
        for seed in run.seeds:
            cells = run.compares.get((form, seed), {}).get("layers", {}).get(category, {})
            cell = cells.get(headline_metric(cells)) if cells else None
            if cell:
                lines.append(
                    f"| {category} | {form} | {seed} | {difference_text(cell)} | "
                    f"{cell['p_value']:.3g} |"
                )
    return [*lines, "", *figure(run, f"compare-{run.best_form('simple_python')}", "bfcl"), ""]


def figure(run: Run, prefix: str, name: str) -> list[str]:
    """The first seed's comparison bar chart, copied into docs/, as a markdown image."""
    if not run.seeds:
        return []
    plot = run.root / f"{prefix}-s{run.seeds[0]}" / "compare.png"
    if not plot.exists():
        return []
    DOCS.mkdir(exist_ok=True)
    shutil.copyfile(plot, DOCS / f"results-{name}.png")
    return [f"![base vs tuned, seed {run.seeds[0]}](results-{name}.png)", ""]


def official_section(run: Run) -> list[str]:
    agree, n, rows, checker = official(run)
    if not n:
        return []
    lines = [
        "## BFCL's own checker",
        "",
        f"Every BFCL prediction of every run above was also judged by {checker}: it agrees with "
        f"fcsft's verdict on {agree} of {n} ({agree / n:.2%}).",
        "",
    ]
    if rows:
        lines += ["| run | item | fcsft | BFCL | why |", "|---|---|---|---|---|"]
        lines += [
            f"| {name} | {row['id']} | {row['fcsft']} | {row['bfcl']} | {row['explanation']} |"
            for name, row in rows
        ]
        lines.append("")
    return lines


def mmlu_section(run: Run) -> list[str]:
    cells = mmlu_cells(run)
    if not cells:
        return []
    first = next(iter(cells.values()))
    lines = [
        f"## Forgetting: MMLU ({first['n']} questions, the same for every model)",
        "",
        f"Judged as equivalence: the tuned model keeps what the base knew when the 95% interval "
        f"of the paired difference lies within ±{first['margin']:.0%}. The form that counts is "
        "the first on which the base model is above chance.",
        "",
        "| seed | form | base | tuned | difference [95% CI] | within | McNemar p |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed, cell in cells.items():
        lines.append(
            f"| {seed} | {cell['form']} | {pct(cell['base']['value'])} | "
            f"{pct(cell['tuned']['value'])} | {difference_text(cell)} | "
            f"{cell['within_margin']} | {cell['p_value']:.3g} |"
        )
    return [*lines, ""]


def layers_section(run: Run) -> list[str]:
    rows = []
    for seed, compare in run.layers.items():
        for layer, cells in compare.get("layers", {}).items():
            if layer != "all" and cells:
                metric = headline_metric(cells)
                cell = cells[metric]
                rows.append(
                    f"| {layer} | {metric} | {seed} | {cell['n']} | {pct(cell['base']['value'])} "
                    f"| {pct(cell['tuned']['value'])} | {difference_text(cell)} | "
                    f"{cell['p_value']:.3g} |"
                )
    if not rows:
        return []
    return [
        "## fcsft's own three layers (the run's held-out families)",
        "",
        "| layer | metric | seed | n | base | tuned | difference [95% CI] | McNemar p |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
    ]


def dev_section(run: Run) -> list[str]:
    """The evaluations on the dev part that the choices were made on (RUN/dev/NAME), and the
    step choose.py picked from them (RUN/dev/choice.json)."""
    reports = [(p.parent.name, load(p)) for p in sorted(run.root.glob("dev/*/report.json"))]
    if not reports:
        return []
    headline = [(c, "no_call" if c == "irrelevance" else "full_call") for c in CATEGORIES]
    lines = [
        "## Choices made on dev",
        "",
        "| run | part | "
        + " | ".join(f"{c} {NAMES[m]}" for c, m in headline)
        + " | simple_python call rate | command |",
        "|---|---|" + "---|" * len(headline) + "---|---|",
    ]
    for name, report in reports:
        cells = [pct(run.rate(report, c, m)) for c, m in headline]
        lines.append(
            f"| {name} | {report.get('split', {}).get('part')} | {' | '.join(cells)} | "
            f"{pct(run.rate(report, 'simple_python', 'called'))} | `{report.get('command')}` |"
        )
    choice = load(run.root / "dev" / "choice.json")
    if choice:
        lines += [
            "",
            f"Step chosen: **{choice['step']}**, call bias {choice.get('call_bias', 0):g} "
            f"(`choose.py`: {choice['rule']})"
            + ("" if choice.get("met_guards") else " No step met both guards on dev."),
        ]
    return [*lines, ""]


def tried_section(folder: Path | None = None) -> list[str]:
    """Every recipe whose dev study choose.py kept (tried/NAME.json): how its data was built,
    how it was trained, and seed 0's dev scores at each step, the chosen one in bold."""
    tried = [(p.stem, load(p)) for p in sorted((folder or TRIED).glob("*.json"))]
    if not tried:
        return []
    headline = [f"{c}_{'no_call' if c == 'irrelevance' else 'full_call'}" for c in CATEGORIES]
    lines = [
        "## Recipes tried on dev",
        "",
        "Seed 0 of each recipe, scored on the dev part at each snapshot step (and call bias, "
        "where one was tried); the one in bold is what choose.py picked for that recipe.",
        "",
        "| recipe | build options | training | step | "
        + " | ".join(CATEGORIES)
        + " | simple_python call rate | both guards met |",
        "|---|---|---|---|" + "---|" * len(CATEGORIES) + "---|---|",
    ]
    for name, choice in tried:
        recipe = choice.get("recipe", {})
        argv = list(recipe.get("build") or [])[1:]
        if "--run-dir" in argv:  # where it ran is not part of the recipe
            del argv[argv.index("--run-dir") : argv.index("--run-dir") + 2]
        build = shlex.join(argv)
        train = recipe.get("train", {})
        method = train.get("method")
        method = f"{method} r{train.get('lora_r')}" if method == "lora" else method
        training = (
            f"{method}, lr {train.get('learning_rate')}, "
            f"{train.get('batch_size')}x{train.get('grad_accum')}x{train.get('max_length')} "
            f"tokens a step, {recipe.get('examples')} conversations "
            f"({recipe.get('too_long')} too long)"
        )
        chosen = choice.get("chosen", str(choice.get("step")))  # a choice of step alone
        for step, scores in choice.get("steps", {}).items():
            mark = f"**{step}**" if step == chosen else step
            cells = [pct(scores.get(key)) for key in headline]
            lines.append(
                f"| {name} | `{build}` | {training} | {mark} | {' | '.join(cells)} | "
                f"{pct(scores.get('simple_python_called'))} | "
                f"{'yes' if scores.get('meets_guards') else 'no'} |"
            )
    return [*lines, ""]


def decontamination_section(run: Run) -> list[str]:
    path = run.root / "curate" / "contamination.jsonl"
    stats = load(run.root / "curate" / "stats.json").get("report", {}).get("decontamination", {})
    if not path.exists():
        return []
    removed = list(read_jsonl(path))
    lines = [
        "## Decontamination",
        "",
        f"Curation removed {len(removed)} training records (tool data and the general mix) "
        "that matched an evaluation item: the same question after normalisation, a question "
        f"within a character-gram similarity of {stats.get('near')}, a shared "
        f"{stats.get('ngram')}-word run, or one of the item's own functions. Every one, beside "
        "the item it matched:",
        "",
        "| removed record | its question | matched | matched text | rule | similarity |",
        "|---|---|---|---|---|---|",
    ]
    for row in removed:
        lines.append(
            f"| {row['id']} | {_cell(row['question'])} | {row['set']} {row['match_id']} | "
            f"{_cell(row['match_text'])} | {row['how']} | {row['score']} |"
        )
    return [*lines, ""]


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def data_section(run: Run) -> list[str]:
    root = run.root
    stats = {s: load(root / s / "stats.json") for s in ("validate", "curate", "general")}
    generate = [load(path) for path in sorted(root.glob("generate-*/stats.json"))]
    out = ["## The data and the training runs", ""]
    val, cur, general = stats["validate"], stats["curate"], stats["general"]
    if generate:
        total = {k: sum(g.get(k, 0) for g in generate) for k in ("in", "out", "rejected", "wall_s")}
        out.append(
            f"- generate (reference teacher over BFCL live gold calls, simulated tools, one stage "
            f"per tool namespace, {len(generate)} in all): {total['in']} tasks, {total['out']} "
            f"trajectories, {total['rejected']} failed; {total['wall_s']:.0f} s"
        )
    if general:
        out.append(f"- general: {general.get('out')} answers of the base model to general prompts")
    for name, stage in (("validate", val), ("curate", cur)):
        if stage:
            reasons = ", ".join(f"{k} {v}" for k, v in stage.get("reasons", {}).items())
            out.append(
                f"- {name}: {stage.get('out')} kept, {stage.get('rejected')} dropped ({reasons})"
            )
    sizes = {
        split: sum(1 for _ in path.open())
        for split in ("train", "test")
        if (path := root / "export" / f"{split}.openai.jsonl").exists()
    }
    if sizes:
        out.append(f"- export: {sizes.get('train')} train, {sizes.get('test')} test conversations")
    for seed in run.seeds:
        train = load(root / f"train-s{seed}" / "model" / "fcsft.json")
        if train:
            out.append(
                f"- training, seed {seed}: {train.get('steps')} steps on {train.get('examples')} "
                f"conversations ({train.get('too_long')} left out: no assistant token within "
                f"max_length), loss {train.get('loss_first'):.3f} -> "
                f"{train.get('loss_last'):.3f}, {train.get('wall_s'):.0f} s"
            )
    return [*out, ""]


def commands_section(run: Run) -> list[str]:
    if not run.commands:
        return []
    total = sum(c["wall_s"] for c in run.commands)
    lines = [
        "## Commands",
        "",
        f"As run by `examples/bfcl-smollm2/run.sh` and logged in commands.jsonl, with each "
        f"one's wall time: {len(run.commands)} commands, {total / 3600:.1f} h in all (a resumed "
        "step is listed once for each time it ran; one cut off when a working session ended "
        "counts the time it had run).",
        "",
        "```bash",
    ]
    for command in run.commands:
        failed = ", cut off" if command.get("cut_off") else ""
        failed += f", exit {command['exit']}" if command["exit"] else ""
        lines.append(f"{shlex.join(command['argv'])}  # {command['wall_s']:.0f} s{failed}")
    return [*lines, "```", ""]


def main(root: Path) -> tuple[str, dict[str, Any]]:
    """The page and the headline figures of a run directory."""
    run = Run(root)
    figures = headline(run)
    model = next(iter(run.base.values()), {}).get("model", "the base model")
    out = [
        f"# Results: `{model}` before and after fcsft's data",
        "",
        "Produced by `examples/bfcl-smollm2/run.sh` (see Commands); every number below is read "
        "from the files the run wrote (`examples/bfcl-smollm2/results.py`). The tuned model was "
        f"trained with seeds {', '.join(map(str, run.seeds))}: its figures are the mean over "
        "seeds with the lowest and highest beside it. The base model was asked in the forms "
        f"{', '.join(run.base)}; each category compares with the form that scored best there. "
        "Replies are decoded greedily; in fcsft's tagged form (the tuned model's, and the base's "
        "`tagged`) the decoder keeps a call inside the offered functions' schemas (a name on "
        "offer, its parameters in their types, every required one: `fcsft.models.guard`), as a "
        "structured-output server would; BFCL's own forms are free text, parsed leniently.",
        "",
        *targets(run, figures),
        *bfcl_tables(run),
        *official_section(run),
        *mmlu_section(run),
        *layers_section(run),
        *figure(run, "compare-layers", "layers"),
        *dev_section(run),
        *tried_section(),
        *decontamination_section(run),
        *data_section(run),
        *commands_section(run),
    ]
    return "\n".join(out), figures


README = DOCS.parent / "README.md"
PROOF_BEGIN, PROOF_END = "<!-- proof: written by results.py -->", "<!-- proof end -->"
NOT_RUN = (
    "The experiment has not yet been run under this protocol (dev and test parts, three "
    "seeds): `docs/results.json` does not exist, so there is no figure to give here."
)


def proof_paragraph(figures: dict[str, Any] | None) -> str:
    """The README's proof paragraph: every figure in it read from docs/results.json."""
    if not figures:
        return NOT_RUN
    base, forms = figures["base"], figures["base_forms"]

    def pair(key: str, category: str) -> str:
        return f"{pct(base[key])} ({forms[category]}) -> {pct(figures[key])}"

    low, high = figures["mmlu_diff_low"], figures["mmlu_diff_high"]
    mmlu = "not measured" if low is None else f"[{low:+.1%}, {high:+.1%}]"
    agreement = figures["official_agreement"]
    return (
        f"On the {figures['split']} part of BFCL, base (its best prompting form) -> tuned (mean "
        f"of seeds {', '.join(map(str, figures['seeds']))}): simple_python AST accuracy "
        f"{pair('simple_python_full_call', 'simple_python')} (n = {figures['simple_python_n']}), "
        f"multiple {pair('multiple_full_call', 'multiple')}, parallel "
        f"{pair('parallel_full_call', 'parallel')}, irrelevance "
        f"{pair('irrelevance_no_call', 'irrelevance')}, call rate on simple_python "
        f"{pair('simple_python_call_rate', 'simple_python')}; MMLU ({figures['mmlu_n']} "
        f"questions) tuned minus base, 95% interval {mmlu}; BFCL's own checker agrees with "
        f"fcsft's on {pct(agreement)} of the predictions. The run took "
        f"{figures['wall_s'] / 3600:.1f} h."
    )


def write(page: str, figures: dict[str, Any]) -> None:
    """docs/results.md, docs/results.json and the README's proof paragraph."""
    DOCS.mkdir(exist_ok=True)
    write_text(DOCS / "results.md", page)
    write_json(DOCS / "results.json", figures)
    if README.exists():
        paragraph = proof_paragraph(figures)
        write_text(README, readme_with_proof(README.read_text(), paragraph))


def readme_with_proof(readme: str, paragraph: str) -> str:
    return with_block(readme, PROOF_BEGIN, PROOF_END, paragraph, str(README))


if __name__ == "__main__":
    write(*main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/bfcl-smollm2")))
    print(f"wrote {DOCS / 'results.md'} and {DOCS / 'results.json'}")
