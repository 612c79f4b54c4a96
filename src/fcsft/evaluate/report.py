"""Reports: one model's scores (`report.json`/`.html`) and base vs tuned (`compare.json`/`.html`).

An eval directory holds `items.jsonl` (what was asked), `predictions/out.jsonl` (what the
model called), `mmlu.jsonl` (per question, 1/0 per answer form) when MMLU was run, and what
this module writes from them: `scores.jsonl` (per item, per metric), `report.json` and
`report.html`. Predictions for BFCL items are also judged by BFCL's own checker
(`fcsft.evaluate.official`): report.json's `official` holds both verdicts per item, their
agreement and every disagreement with its reason; BFCL multi-turn items, run live, add
`multi_turn`: task success per category by fcsft's and BFCL's checks with 95% Wilson
intervals, both verdicts per item and every disagreement. The live layer
(`live_items.jsonl` and `live/out.jsonl`, see fcsft.evaluate.live) adds `live_scores.jsonl`,
the verdict per task, and `live`: task success and each of its checks with 95% Wilson
intervals, and the replies taken. Nothing here calls a model, so a report can be rebuilt, or
predictions made elsewhere scored, without one.

Comparisons are paired: the same items, the same MMLU questions. Per layer and metric the
report gives both rates with 95% Wilson intervals, the difference with Newcombe's paired 95%
interval (none under ten pairs, see fcsft.evaluate.significance) and McNemar's exact p; the
live layer's checks are paired the same way over the tasks both models did. For MMLU it says
which answer form counts: the first of letter, raw cloze and normalised cloze on which the
base model is above chance (a form at chance cannot show forgetting). Forgetting is judged as
equivalence: the tuned model keeps what the base knew when the 95% interval of the paired
MMLU difference lies within +-FORGETTING_MARGIN (a p above 0.05 says only that the test could
not tell).
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from fcsft.errors import UserError
from fcsft.evaluate.live import METRICS as LIVE_METRICS
from fcsft.evaluate.live import mean_interval, score_live, summarise_live
from fcsft.evaluate.predict import answered
from fcsft.evaluate.score import METRICS, score_item, summarise
from fcsft.evaluate.significance import mcnemar, paired_interval
from fcsft.files import write_text
from fcsft.intervals import wilson
from fcsft.jsonl import read_jsonl, write_json, write_jsonl
from fcsft.plots import bars, inline_png

MMLU_FORMS = ("letter", "cloze", "cloze_norm")
CHANCE = 0.25
FORGETTING_MARGIN = 0.03
"""MMLU is unchanged when the paired difference's 95% interval lies within +-this."""


def score_rows(items_path: Path, predictions_path: Path) -> tuple[list[dict], list[str]]:
    """Per-item scores, and the ids left out because the model failed (not answered) on them."""
    pairs, failed = answered(items_path, predictions_path)
    rows = [
        {"id": item["id"], "layer": item.get("layer"), "kind": item.get("kind")}
        | score_item(item, prediction)
        for item, prediction in pairs
    ]
    return rows, failed


def mmlu_summary(marks: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy per answer form with its interval; `counts` names the form to judge by."""
    forms = [f for f in MMLU_FORMS if marks and f in marks[0]]
    summary: dict[str, Any] = {}
    for form in forms:
        interval = wilson(sum(m[form] for m in marks), len(marks))
        summary[form] = interval.to_json() | {"above_chance": interval.low > CHANCE}
    above = [f for f in forms if summary[f]["above_chance"]]
    summary["counts"] = above[0] if above else (forms[0] if forms else None)
    return summary


def official(eval_dir: Path, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """BFCL's own checker on the BFCL predictions beside fcsft's verdicts (None: no BFCL item)."""
    from fcsft.evaluate.official import official_section

    items = {item["id"]: item for item in read_jsonl(eval_dir / "items.jsonl")}
    predictions = read_jsonl(eval_dir / "predictions" / "out.jsonl")
    try:
        return official_section(items, predictions, {row["id"]: row for row in rows})
    except UserError as exc:
        return {"skipped": str(exc)}


def multi_turn(eval_dir: Path) -> dict[str, Any] | None:
    """Task success of the BFCL multi-turn items by fcsft's and BFCL's checks (None: none)."""
    from fcsft.evaluate.multi_turn import multi_turn_section

    items = {item["id"]: item for item in read_jsonl(eval_dir / "items.jsonl")}
    if not any(item.get("kind") == "multi_turn" for item in items.values()):
        return None
    predictions = list(read_jsonl(eval_dir / "predictions" / "out.jsonl"))
    try:
        return multi_turn_section(items, predictions)
    except UserError as exc:
        return {"skipped": str(exc)}


def live(eval_dir: Path) -> dict[str, Any] | None:
    """The live layer's verdicts (live_scores.jsonl) and their summary (None: not run)."""
    items_path = eval_dir / "live_items.jsonl"
    if not items_path.exists():
        (eval_dir / "live_scores.jsonl").unlink(missing_ok=True)  # none left from an earlier run
        return None
    rows, failed = score_live(items_path, eval_dir / "live" / "out.jsonl")
    write_jsonl(eval_dir / "live_scores.jsonl", rows)
    return summarise_live(rows) | {"model_errors": len(failed)}


def report(eval_dir: Path, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score an eval directory and write scores.jsonl, report.json and report.html."""
    rows, failed = score_rows(eval_dir / "items.jsonl", eval_dir / "predictions" / "out.jsonl")
    write_jsonl(eval_dir / "scores.jsonl", rows)
    result: dict[str, Any] = dict(meta or {})
    result.update(
        items=len(rows) + len(failed),
        scored=len(rows),
        model_errors=len(failed),
        layers=summarise(rows, by="layer"),
    )
    checked = official(eval_dir, rows)
    if checked is not None:
        result["official"] = checked
    tasks = multi_turn(eval_dir)
    if tasks is not None:
        result["multi_turn"] = tasks
    done = live(eval_dir)
    if done is not None:
        result["live"] = done
    mmlu_path = eval_dir / "mmlu.jsonl"
    if mmlu_path.exists():
        result["mmlu"] = mmlu_summary(list(read_jsonl(mmlu_path)))
    write_json(eval_dir / "report.json", result)
    plot = bars(
        eval_dir / "metrics.png",
        "accuracy by layer (95% Wilson)",
        {
            layer: _triples(metrics, ("full_call", "no_call", "tool_selection"))
            for layer, metrics in result["layers"].items()
            if layer != "all"
        },
        share=True,
    )
    page = [_head(f"fcsft eval: {html.escape(str(result.get('model', eval_dir.name)))}")]
    page.append(_command_line(result))
    page.append(_split_line(result))
    page.append(_layers_table(result["layers"]))
    page.append(inline_png(plot))
    page.append(_official_html(result.get("official")))
    page.append(_multi_turn_html(result.get("multi_turn")))
    page.append(_live_html(result.get("live")))
    if "mmlu" in result:
        page.append(_mmlu_table({"model": result["mmlu"]}))
    write_text(eval_dir / "report.html", "\n".join(page) + "</body></html>\n")
    return result


def _triples(metrics: dict[str, Any], names: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    return {
        name: (metrics[name]["rate"], *metrics[name]["ci95"])
        for name in names
        if name in metrics and metrics[name]["n"]
    }


def _paired(
    base: dict[str, dict], tuned: dict[str, dict], metric: str
) -> tuple[list[int], list[int]]:
    ids = [
        i
        for i in base
        if i in tuned and base[i].get(metric) is not None and tuned[i].get(metric) is not None
    ]
    return [int(base[i][metric]) for i in ids], [int(tuned[i][metric]) for i in ids]


def paired_difference(first: list[int], second: list[int]) -> dict[str, Any]:
    """Both rates with intervals, the difference with Newcombe's paired interval (None at small
    n), McNemar's exact p."""
    return {
        "n": len(first),
        "base": wilson(sum(first), len(first)).to_json(),
        "tuned": wilson(sum(second), len(second)).to_json(),
        **paired_interval(first, second),
        **mcnemar(first, second),
    }


def compare(base_dir: Path, tuned_dir: Path, out_dir: Path) -> dict[str, Any]:
    """Base vs tuned on the items and MMLU questions both answered; a UserError when they
    answered nothing in common (another split, another item set)."""
    runs = {}
    for side, directory in (("base", base_dir), ("tuned", tuned_dir)):
        if not (directory / "scores.jsonl").exists():
            report(directory, _meta(directory))
        runs[side] = {
            "meta": _meta(directory),
            "scores": {row["id"]: row for row in read_jsonl(directory / "scores.jsonl")},
        }
    base, tuned = runs["base"]["scores"], runs["tuned"]["scores"]
    marks = _both(base_dir, tuned_dir, "mmlu.jsonl")
    verdicts = _both(base_dir, tuned_dir, "live_scores.jsonl")
    paired = {
        "items": len(base.keys() & tuned.keys()),
        "only_base": len(base.keys() - tuned.keys()),
        "only_tuned": len(tuned.keys() - base.keys()),
    }
    if not paired["items"] and marks is None and verdicts is None:
        raise UserError(
            f"{base_dir} and {tuned_dir} answered no item in common, and a comparison pairs "
            "the items both answered: evaluate both on the same items (--items, or --bfcl "
            "with the same --split and --bfcl-limit)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    layers: dict[str, dict[str, Any]] = {}
    for layer in sorted({row["layer"] for row in base.values()} | {"all"}):
        in_layer = {i: r for i, r in base.items() if layer == "all" or r["layer"] == layer}
        layers[layer] = {}
        for metric in METRICS:
            first, second = _paired(in_layer, tuned, metric)
            if first:
                layers[layer][metric] = paired_difference(first, second)
    result: dict[str, Any] = {
        "base": runs["base"]["meta"],
        "tuned": runs["tuned"]["meta"],
        "paired": paired,
        "layers": layers,
    }
    if marks is not None:
        result["mmlu"] = _mmlu_compare(*marks)
    if verdicts is not None:
        result["live"] = _live_compare(*verdicts)
    write_json(out_dir / "compare.json", result)
    write_text(out_dir / "compare.html", _compare_html(result, out_dir))
    return result


def _both(base_dir: Path, tuned_dir: Path, name: str) -> tuple[dict, dict] | None:
    """The rows of file `name` by id in base and tuned (None unless both have it)."""
    if not ((base_dir / name).exists() and (tuned_dir / name).exists()):
        return None
    base, tuned = ({row["id"]: row for row in read_jsonl(d / name)} for d in (base_dir, tuned_dir))
    return base, tuned


def _live_compare(base: dict[str, dict], tuned: dict[str, dict]) -> dict[str, Any]:
    """Each live check paired over the items both models were judged on, and the steps each
    took."""
    ids = [i for i in base if i in tuned]
    return {
        "n": len(ids),
        "metrics": {
            m: paired_difference([int(base[i][m]) for i in ids], [int(tuned[i][m]) for i in ids])
            for m in LIVE_METRICS
        }
        if ids
        else {},
        "steps": {
            side: mean_interval([rows[i]["steps"] for i in ids])
            for side, rows in (("base", base), ("tuned", tuned))
        },
    }


def _mmlu_compare(base: dict[str, dict], tuned: dict[str, dict]) -> dict[str, Any]:
    ids = [i for i in base if i in tuned]
    out: dict[str, Any] = {
        form: paired_difference([base[i][form] for i in ids], [tuned[i][form] for i in ids])
        for form in MMLU_FORMS
        if ids and form in base[ids[0]] and form in tuned[ids[0]]
    }
    for form in MMLU_FORMS:
        if form in out:
            out[form]["within_margin"] = within_margin(out[form])
    judged = mmlu_summary([base[i] for i in ids])["counts"] if ids else None
    out["counts"] = judged if judged in out else None
    out["margin"] = FORGETTING_MARGIN
    return out


def within_margin(cell: dict[str, Any], margin: float = FORGETTING_MARGIN) -> bool | None:
    """Whether the difference's interval lies inside +-margin (None: no interval)."""
    if cell.get("ci95_low") is None:
        return None
    return -margin <= cell["ci95_low"] and cell["ci95_high"] <= margin


def _meta(directory: Path) -> dict[str, Any]:
    path = directory / "report.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    kept = ("model", "protocol", "command", "items", "split")
    return {k: meta[k] for k in kept if k in meta} | {"dir": str(directory)}


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:70em}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.sig{font-weight:bold}"
)


def _head(title: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
    )


def _command_line(meta: dict[str, Any]) -> str:
    command = meta.get("command")
    return f"<p>command: <code>{html.escape(command)}</code></p>" if command else ""


def _official_html(checked: dict[str, Any] | None) -> str:
    if not checked:
        return ""
    if "skipped" in checked:
        return f"<p>BFCL's own checker was not run: {html.escape(checked['skipped'])}</p>"
    page = [
        f"<h2>BFCL's own checker</h2><p>{html.escape(checked['checker'])} agrees with fcsft on "
        f"{checked['agree']} of {checked['n']} predictions ({checked['agreement']:.2%}).</p>"
    ]
    if checked["disagreements"]:
        page.append("<table><tr><th>item</th><th>fcsft</th><th>BFCL</th><th>why</th></tr>")
        for row in checked["disagreements"]:
            page.append(
                f"<tr><td>{html.escape(row['id'])}</td><td>{row['fcsft']}</td>"
                f"<td>{row['bfcl']}</td><td>{html.escape(row['explanation'])}</td></tr>"
            )
        page.append("</table>")
    return "\n".join(page)


def _multi_turn_html(tasks: dict[str, Any] | None) -> str:
    if not tasks:
        return ""
    if "skipped" in tasks:
        return f"<p>BFCL multi-turn was not judged: {html.escape(tasks['skipped'])}</p>"
    page = [
        "<h2>BFCL multi-turn: task success</h2><p>Each item run live against BFCL's own "
        f"environments; {html.escape(tasks['checker'])} agrees with fcsft's state check on "
        f"{tasks['agree']} of {tasks['n']} items.</p>",
        "<table><tr><th>category</th><th>fcsft</th><th>BFCL</th></tr>",
    ]
    for layer, cells in tasks["success"].items():
        page.append(
            f"<tr><td>{html.escape(layer)}</td><td>{_pct(cells['fcsft'])}</td>"
            f"<td>{_pct(cells['bfcl'])}</td></tr>"
        )
    page.append("</table>")
    for row in tasks["disagreements"]:
        why = row.get("fcsft_reason") or row.get("bfcl_error") or ""
        page.append(
            f"<p>{html.escape(row['id'])}: fcsft {row['fcsft']}, BFCL {row['bfcl']}: "
            f"{html.escape(why)}</p>"
        )
    return "\n".join(page)


_LIVE_CHECKS = {
    "success": "task success (all four below)",
    "stopped": "stopped with a final answer",
    "valid_calls": "every call valid",
    "grounded": "answer grounded in its results",
    "correct": "gold facts in the answer",
}


def _mean_text(cell: dict[str, Any]) -> str:
    if cell["ci95"] is None:
        return f"{cell['mean']:.2f} <small>n={cell['n']}</small>"
    low, high = cell["ci95"]
    return f"{cell['mean']:.2f} <small>[{low:.2f}, {high:.2f}] n={cell['n']}</small>"


def _live_html(done: dict[str, Any] | None) -> str:
    if not done:
        return ""
    page = [
        "<h2>Live: task success</h2><p>The model ran the agent loop itself against the "
        "project's tools on each held-out task, judged on the outcome (see "
        "fcsft.evaluate.live); 95% Wilson intervals.</p><table><tr><th>check</th><th>rate</th>"
        "</tr>"
    ]
    for metric, label in _LIVE_CHECKS.items():
        page.append(f"<tr><td>{label}</td><td>{_pct(done['rates'][metric])}</td></tr>")
    page.append(f"<tr><td>replies taken (mean)</td><td>{_mean_text(done['steps'])}</td></tr>")
    page.append(f"<tr><td>gold's turns (mean)</td><td>{_mean_text(done['gold_steps'])}</td></tr>")
    page.append("</table>")
    if done["first_failure"]:
        failures = ", ".join(f"{check} {count}" for check, count in done["first_failure"].items())
        page.append(f"<p>First check failed: {html.escape(failures)}.</p>")
    return "\n".join(page)


def _live_compare_html(done: dict[str, Any]) -> str:
    page = [
        f"<h2>Live: task success</h2><p>{done['n']} held-out tasks, each done by the model "
        "itself against the project's tools (fcsft.evaluate.live).</p><table><tr><th>check</th>"
        "<th>n</th><th>base</th><th>tuned</th><th>difference</th></tr>"
    ]
    for metric, cell in done["metrics"].items():
        page.append(
            f"<tr><td>{_LIVE_CHECKS[metric]}</td><td>{cell['n']}</td><td>{_pct(cell['base'])}"
            f"</td><td>{_pct(cell['tuned'])}</td>{_difference_cell(cell)}</tr>"
        )
    steps = done["steps"]
    page.append(
        f"<tr><td>replies taken (mean)</td><td>{done['n']}</td>"
        f"<td>{_mean_text(steps['base'])}</td><td>{_mean_text(steps['tuned'])}</td><td></td></tr>"
    )
    return "\n".join(page) + "</table>"


def _split_line(meta: dict[str, Any]) -> str:
    split = meta.get("split")
    if not split:
        return ""
    asked = ", ".join(f"{category} {n}" for category, n in split["asked"].items())
    part = "every item" if split["part"] == "all" else f"the {html.escape(split['part'])} part"
    return (
        f"<p>BFCL: {part} of each category ({asked} items; "
        f"{split['dev_share']:.0%} of each category is dev, split by "
        f"<code>{html.escape(split['seed'])}</code>).</p>"
    )


def _pct(cell: dict[str, Any]) -> str:
    low, high = cell["ci95"]
    rate = cell.get("rate", cell.get("value", 0.0))
    return f"{rate:.1%} <small>[{low:.1%}, {high:.1%}] n={cell['n']}</small>"


def _layers_table(layers: dict[str, dict[str, Any]]) -> str:
    rows = ["<table><tr><th>layer</th>" + "".join(f"<th>{m}</th>" for m in METRICS) + "</tr>"]
    for layer, metrics in layers.items():
        cells = "".join(
            f"<td>{_pct(metrics[m]) if m in metrics and metrics[m]['n'] else '—'}</td>"
            for m in METRICS
        )
        rows.append(f"<tr><td>{html.escape(layer)}</td>{cells}</tr>")
    return "\n".join(rows) + "</table>"


def _mmlu_table(sides: dict[str, dict[str, Any]]) -> str:
    rows = ["<h2>MMLU (forgetting)</h2><table><tr><th>model</th>"]
    rows[0] += "".join(f"<th>{f}</th>" for f in MMLU_FORMS) + "<th>counts</th></tr>"
    for side, summary in sides.items():
        cells = "".join(f"<td>{_pct(summary[f]) if f in summary else '—'}</td>" for f in MMLU_FORMS)
        rows.append(f"<tr><td>{side}</td>{cells}<td>{summary.get('counts')}</td></tr>")
    return "\n".join(rows) + "</table>"


def difference_text(cell: dict[str, Any]) -> str:
    """`+21.0% [+13.0%, +29.0%]`, or `+66.7% [no interval at n=6]` under ten pairs."""
    if cell.get("ci95_low") is None:
        return f"{cell['difference']:+.1%} [no interval at n={cell['n']}]"
    return f"{cell['difference']:+.1%} [{cell['ci95_low']:+.1%}, {cell['ci95_high']:+.1%}]"


def _difference_cell(cell: dict[str, Any]) -> str:
    mark = " class='sig'" if cell["p_value"] < 0.05 else ""
    return f"<td{mark}>{difference_text(cell)} <small>p={cell['p_value']:.3g}</small></td>"


def _compare_html(result: dict[str, Any], out_dir: Path) -> str:
    title = "fcsft eval compare: base vs tuned"
    page = [_head(title)]
    page.append(
        f"<p>base: <code>{html.escape(str(result['base'].get('model')))}</code>, tuned: "
        f"<code>{html.escape(str(result['tuned'].get('model')))}</code>. Cells: base → tuned, "
        "difference with Newcombe's paired 95% interval and McNemar's exact p (bold: p &lt; 0.05)."
        "</p>"
    )
    header = "<tr><th>layer</th><th>metric</th><th>n</th><th>base</th><th>tuned</th>"
    rows = [f"<table>{header}<th>difference</th></tr>"]
    for layer, metrics in result["layers"].items():
        for metric, cell in metrics.items():
            rows.append(
                f"<tr><td>{html.escape(layer)}</td><td>{metric}</td><td>{cell['n']}</td>"
                f"<td>{_pct(cell['base'])}</td><td>{_pct(cell['tuned'])}</td>"
                f"{_difference_cell(cell)}</tr>"
            )
    page.append("\n".join(rows) + "</table>")
    headline: dict[str, dict[str, tuple[float, ...]]] = {"base": {}, "tuned": {}}
    for layer, metrics in result["layers"].items():
        cell = metrics.get(headline_metric(metrics))
        if cell is not None:
            for side in headline:
                headline[side][layer] = (cell[side]["value"], *cell[side]["ci95"])
    page.append(
        inline_png(
            bars(
                out_dir / "compare.png",
                "full-call accuracy (no-call where nothing should be called)",
                headline,
                share=True,
            )
        )
    )
    if "live" in result:
        page.append(_live_compare_html(result["live"]))
    if "mmlu" in result:
        mmlu = result["mmlu"]
        page.append(
            f"<h2>MMLU (forgetting)</h2><p>Unchanged when the difference's 95% interval lies "
            f"within ±{mmlu['margin']:.0%}.</p><table><tr><th>form</th><th>n</th>"
        )
        page.append("<th>base</th><th>tuned</th><th>difference</th><th>within</th></tr>")
        for form in MMLU_FORMS:
            if form in mmlu:
                cell = mmlu[form]
                counts = " (counts)" if mmlu.get("counts") == form else ""
                page.append(
                    f"<tr><td>{form}{counts}</td><td>{cell['n']}</td><td>{_pct(cell['base'])}"
                    f"</td><td>{_pct(cell['tuned'])}</td>{_difference_cell(cell)}"
                    f"<td>{cell['within_margin']}</td></tr>"
                )
        page.append("</table>")
    return "\n".join(page) + "</body></html>\n"


def headline_metric(metrics: dict[str, Any]) -> str:
    """The metric a layer is judged by: task success for the live layer, no-call where every
    gold is 'call nothing', else full-call accuracy."""
    if "success" in metrics:
        return "success"
    return "no_call" if "no_call" in metrics and "full_call" not in metrics else "full_call"
