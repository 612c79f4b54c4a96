"""BFCL's own checker beside fcsft's scorer, prediction by prediction.

Every prediction for a BFCL item is judged twice: by fcsft's `score_item` (full_call on the
AST categories, no_call on irrelevance) and by the installed bfcl-eval package's own rules,
and the report gives both verdicts per item, how often they agree and every disagreement with
its reason.

BFCL's rules, as its eval runner applies them:

- AST categories: `ast_checker(functions as BFCL wrote them, the calls, BFCL's possible answer,
  category)["valid"]`, run for a model whose function names show "." as "_" (as fcsft shows
  them). A reply that could not be decoded is invalid.
- irrelevance: right when the reply decodes to no call; a reply that cannot be decoded counts
  as no call. fcsft counts an unparseable reply as a failure instead, the one rule on which the
  two differ by design (`REASONS["undecodable_is_no_call"]`).

BFCL's checker module imports the model-config table, which imports every provider's handler
and SDK; while the checker is imported, that one module is replaced in sys.modules by a stub
holding the single entry the checker reads, and put back afterwards.
"""

from __future__ import annotations

import copy
import functools
import importlib.metadata
import itertools
import json
import sys
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from fcsft.benchmarks import bfcl
from fcsft.errors import UserError
from fcsft.jsonl import read_jsonl

MODEL = "fcsft-official"

Check = Callable[[list, list, list, str], dict[str, Any]]

REASONS = {
    "greedy_pairing": "BFCL gives each possible answer the first unused call that fits it, so "
    "an answer that fits two calls can take the one a later answer needed (the same calls pass "
    "in another order); fcsft searches for a full pairing",
    "undecodable_is_no_call": "BFCL counts a reply it cannot decode as calling nothing, which "
    "passes an irrelevance item; fcsft counts an unparseable reply as a failure",
    "probe:int_in_float_array": "BFCL takes an int for a float parameter but not inside an "
    "array of floats (its nested type check skips the int-to-float rule); fcsft takes it at "
    "any depth",
    "probe:float_for_int_in_object": "BFCL does not check the types of an object's values "
    "(5.0 == 5 passes); fcsft holds them to the nested schema",
    "probe:string_case_in_list_in_object": "BFCL normalises strings only one level down; fcsft "
    "normalises them at any depth",
}


@functools.cache
def bfcl_checker() -> Check:
    """BFCL's ast_checker without its model handlers: (functions, output, possible, category)
    -> its result ({"valid": bool, "error": [...], "error_type": str})."""
    name = "bfcl_eval.constants.model_config"
    stub = types.ModuleType(name)
    stub.MODEL_CONFIG_MAPPING = {MODEL: types.SimpleNamespace(underscore_to_dot=True)}  # type: ignore[attr-defined]
    before = sys.modules.get(name)
    sys.modules[name] = stub
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval.ast_checker import ast_checker
    except ImportError as exc:
        raise UserError(f"BFCL's checker needs the bfcl-eval package: {bfcl.INSTALL}") from exc
    finally:
        if before is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = before

    def check(functions: list, output: list, possible: list, category: str) -> dict[str, Any]:
        return ast_checker(
            copy.deepcopy(functions),
            copy.deepcopy(output),
            copy.deepcopy(possible),
            Language.PYTHON,
            category,
            MODEL,
        )

    return check


@functools.cache
def _raw(category: str, folder: Path) -> dict[str, tuple[list, list | None]]:
    """BFCL's own functions and possible answer of each item of a category, by id."""
    answers = {}
    if category not in bfcl.IRRELEVANCE:
        path = folder / "possible_answer" / f"{bfcl.VERSION}_{category}.json"
        answers = {a["id"]: a["ground_truth"] for a in read_jsonl(path)}
    return {
        entry["id"]: (entry["function"], answers.get(entry["id"]))
        for entry in read_jsonl(folder / f"{bfcl.VERSION}_{category}.json")
    }


def is_bfcl(item: dict[str, Any]) -> bool:
    return item.get("layer") in bfcl.SCORED and item.get("kind") in ("ast", "irrelevance")


def _output(prediction: dict[str, Any]) -> list[dict[str, Any]]:
    """The calls as BFCL's checker reads them: [{name: arguments}] over all turns."""
    return [
        {call.get("name"): call.get("arguments")}
        for turn in prediction.get("turns") or []
        for call in turn
        if isinstance(call, dict)
    ]


def official_verdict(
    item: dict[str, Any], prediction: dict[str, Any], check: Check
) -> tuple[bool, str]:
    """BFCL's verdict on one prediction, and its error when it rejects it."""
    output = _output(prediction)
    if item["kind"] == "irrelevance":
        if prediction.get("parse_error") or not output:
            return True, ""
        return False, "irrelevance_error:decoder_success"
    if prediction.get("parse_error"):
        return False, f"ast_decoder:decoder_failed: {prediction['parse_error']}"
    functions, possible = _raw(item["layer"], bfcl.data_dir())[item["id"]]
    result = check(functions, output, possible or [], item["layer"])
    if result["valid"]:
        return True, ""
    return False, f"{result.get('error_type')}: {'; '.join(map(str, result.get('error', [])))}"


def passes_in_another_order(calls: list, accepts: Callable[[list], bool]) -> bool:
    """Whether BFCL accepts these calls in some other order (its greedy pairing, see REASONS);
    up to 7 calls, all orders are tried."""
    return 1 < len(calls) <= 7 and any(
        accepts(list(order)) for order in itertools.permutations(calls)
    )


def _reason(item: dict, prediction: dict, ours: bool, error: str, check: Check) -> str:
    """Why fcsft and BFCL disagree on this prediction."""
    if item["kind"] == "irrelevance" and prediction.get("parse_error"):
        return "undecodable_is_no_call"
    if ours:
        functions, possible = _raw(item["layer"], bfcl.data_dir())[item["id"]]

        def accepts(output: list) -> bool:
            return check(functions, output, possible or [], item["layer"])["valid"]

        if passes_in_another_order(_output(prediction), accepts):
            return "greedy_pairing"
        return f"bfcl rejects: {error}"
    return "bfcl accepts what fcsft rejects"


def version() -> str:
    try:
        return importlib.metadata.version("bfcl-eval")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def official_section(
    items: dict[str, dict[str, Any]],
    predictions: Iterable[dict[str, Any]],
    rows: dict[str, dict[str, Any]],
) -> dict[str, Any] | None:
    """Both verdicts per BFCL item, their agreement and every disagreement (None: no BFCL
    items). `rows` are fcsft's scores by id; items the model failed on are not in them."""
    check: Check | None = None
    verdicts: dict[str, dict[str, bool]] = {}
    disagreements = []
    for prediction in predictions:
        item, row = items.get(prediction["id"]), rows.get(prediction["id"])
        if item is None or row is None or not is_bfcl(item):
            continue
        check = check or bfcl_checker()
        ours = bool(row["no_call"] if item["kind"] == "irrelevance" else row["full_call"])
        theirs, error = official_verdict(item, prediction, check)
        verdicts[item["id"]] = {"fcsft": ours, "bfcl": theirs}
        if ours != theirs:
            why = _reason(item, prediction, ours, error, check)
            disagreements.append(
                {
                    "id": item["id"],
                    "layer": item["layer"],
                    "fcsft": ours,
                    "bfcl": theirs,
                    "reason": why,
                    "explanation": REASONS.get(why, error or why),
                    "output": json.dumps(_output(prediction), ensure_ascii=False)[:400],
                }
            )
    if not verdicts:
        return None
    agree = len(verdicts) - len(disagreements)
    return {
        "checker": f"bfcl_eval {version()} ast_checker",
        "n": len(verdicts),
        "agree": agree,
        "agreement": round(agree / len(verdicts), 5),
        "verdicts": verdicts,
        "disagreements": disagreements,
    }
