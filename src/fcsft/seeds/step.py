"""The seeds step: the seed files and mined chat logs of project.yaml, as seed records.

Every row read ends in `out.jsonl` or in `rejected.jsonl` with its reason: a row that is no
seed (`seeds.malformed`, named by file and line), a mined question nearly the same as one
kept (`seeds.near_duplicate`), a seed past `seeds.limit` (`seeds.limit`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fcsft.errors import UserError
from fcsft.files import open_input
from fcsft.records import Verdict
from fcsft.seeds.importers import Imported, import_seeds, mine_logs
from fcsft.stage import Outcome, Stage
from fcsft.step import Context, step

PROBLEMS_SHOWN = 50  # bad rows listed in stats.json; all of them are in rejected.jsonl


def _rejected(rule: str, reason: str, record: dict[str, Any] | None = None) -> list[Outcome]:
    return [Outcome(record, [Verdict(stage="seeds", rule=rule, passed=False, reason=reason)])]


def _outcomes(
    config: Any, files: list[Path], logs: list[Path]
) -> tuple[list[tuple[str, list[Outcome]]], dict[str, int]]:
    """(id, outcomes) for every row read, in file order, and the PII scrubbed, by kind."""
    imported = import_seeds(files, config.source, config.domain)
    mined = mine_logs(logs, config.domain, pii=config.pii) if logs else Imported()
    chosen = imported.seeds + mined.seeds
    problems = imported.problems + mined.problems
    if not chosen:
        named = ", ".join(str(p) for p in files + logs)
        first = f"; the first of {len(problems)} bad rows: {problems[0]}" if problems else ""
        raise UserError(f"no seed to start from in {named}{first}")
    limit = config.limit if config.limit is not None else len(chosen)
    reason = f"past seeds.limit={limit} (only the first {limit} seeds are used)"
    pairs: list[tuple[str, list[Outcome]]] = [
        (
            s.id,
            [Outcome(s.to_json())] if n < limit else _rejected("seeds.limit", reason, s.to_json()),
        )
        for n, s in enumerate(chosen)
    ]
    for problem in problems:  # "FILE:LINE: what is wrong"
        where = problem.split(": ", 1)[0]
        pairs.append((where, _rejected("seeds.malformed", problem)))
    for duplicate in mined.near_duplicates:
        reason = (
            f"{duplicate.where}: nearly the same as seed {duplicate.of} "
            f"(similarity {duplicate.similarity:.2f})"
        )
        pairs.append(
            (duplicate.where, _rejected("seeds.near_duplicate", reason, duplicate.seed.to_json()))
        )
    return pairs, dict(mined.scrubbed)


@step("seeds", config="seeds")
def seeds(ctx: Context) -> tuple[Stage, list[Path]]:
    config = ctx.section
    files = [ctx.base_dir / p for p in config.files]
    logs = [ctx.base_dir / p for p in config.logs]
    if not files and not logs:
        raise UserError("seeds.files and seeds.logs are both empty: nothing to start from")
    for path in files + logs:  # one line naming a file that cannot be read, before its hash
        open_input(path).close()
    found: dict[str, Any] = {}

    def process(paths: list[Path]) -> list[tuple[str, list[Outcome]]]:
        pairs, found["scrubbed"] = _outcomes(config, paths[: len(files)], paths[len(files) :])
        found["problems"] = [
            o.verdicts[0].reason
            for _, outcomes in pairs
            for o in outcomes
            if o.verdicts and o.verdicts[0].rule == "seeds.malformed"
        ][:PROBLEMS_SHOWN]
        return pairs

    def report(_: Path) -> dict[str, Any]:
        return found

    # Paths are relative to project.yaml: the key holds what they say, not where it lies.
    key = config.model_dump(mode="json", exclude={"files", "logs"}) | {
        "files": [str(p) for p in config.files],
        "logs": [str(p) for p in config.logs],
    }
    stage = Stage("seeds", process, key, whole=True, files=True, report=report)
    return stage, files + logs
