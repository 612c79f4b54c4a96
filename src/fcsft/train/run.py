"""`fcsft train`: LoRA (PEFT) or full fine-tuning, loss on assistant tokens only.

fcsft renders and masks the conversations itself (`train.render`), so the loss is right even
for templates without `{% generation %}` markers, packs them exactly (`train.packing`), and
runs a plain loop: AdamW, warm-up then cosine, gradient accumulation, float32 master weights
with bf16 autocast where `precision` picks it, a validation loss and a checkpoint every
`save_steps` (a killed run resumes from the last one, data order included). Nothing runs in
a step that the update does not need, so a step costs what the same work costs in a bare
torch loop. The output folder is a merged transformers model with its tokenizer and chat
template, usable as `local:PATH`.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from fcsft.errors import UserError, require
from fcsft.files import replacing_folder
from fcsft.formats import FormatError, get_format
from fcsft.formats.chat_tokens import render_example
from fcsft.jsonl import read_numbered, record_id, write_json
from fcsft.models.precision import Choice, choose
from fcsft.models.weights import ADAPTER_BASE, model_folder
from fcsft.section import Section
from fcsft.stage import StopStage
from fcsft.train.packing import IGNORE, Row, batch_tensors, rows_of

log = logging.getLogger(__name__)


class TrainConfig(Section):
    base: str = "local:smollm2"
    """Model to fine-tune: `local:smollm2` (the embedded GGUF, dequantised) or `local:PATH`."""
    method: Literal["lora", "full"] = "lora"
    """LoRA adapters merged at the end, or full fine-tuning (small models only)."""
    lora_r: int = Field(16, ge=1)
    """LoRA rank."""
    lora_alpha: int = Field(32, ge=1)
    """LoRA scaling numerator."""
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    """Dropout on the LoRA path."""
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
        ]
    )
    """Linear layers that get adapters."""
    epochs: float = Field(1.0, gt=0)
    """Passes over the training data (ignored when `steps` is set)."""
    steps: int | None = Field(None, ge=1)
    """Optimiser steps to train for; none: as many as `epochs` makes."""
    batch_size: int = Field(4, ge=1)
    """Sequences (packed or not) per step and device; with `grad_accum`, what one update sees."""
    grad_accum: int = Field(1, ge=1)
    """Gradient accumulation steps."""
    learning_rate: float = Field(2e-4, gt=0)
    """Peak learning rate (cosine schedule with warm-up)."""
    warmup_ratio: float = Field(0.05, ge=0, lt=1)
    """Share of steps spent warming up."""
    max_length: int = Field(1024, ge=64)
    """Tokens per sequence; longer conversations are cut."""
    packing: bool = True
    """Pack several conversations into one sequence (padding under 10%)."""
    val_share: float = Field(0.05, ge=0, lt=0.5)
    """Share of training conversations held out for the evaluation loss."""
    gradient_checkpointing: bool | None = None
    """Trade compute for memory; default: on for CUDA, off on CPU (where memory is rarely the
    limit and the recomputation costs about half again)."""
    save_steps: int = Field(50, ge=1)
    """Checkpoint every this many steps (a killed run resumes from the last one)."""
    snapshots: list[int] = Field(default_factory=list)
    """Steps at which the model so far is also written, merged, to OUT/model-step-N, so that a
    step count can be picked on a dev split from one run (each is a point of the one schedule
    that `steps` sets, not a shorter run)."""
    stop_at: int | None = Field(None, ge=1)
    """End the run after this step of the schedule that `steps` sets and write the model there
    to OUT/model: the model a full run's snapshot at that step is, for that share of the time
    (the proof trains its other seeds only as far as the step chosen on dev)."""
    seed: int = 0
    """Seed for the validation split, the data order and the adapters' initial weights."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """`auto`: bf16 autocast where the hardware runs it fast (CUDA with bf16, a CPU with
    AMX-BF16), float32 elsewhere; master weights stay float32 either way."""

    @model_validator(mode="after")
    def _snapshots_inside(self) -> TrainConfig:
        late = [step for step in self.snapshots if step < 1 or (self.steps and step >= self.steps)]
        if late:
            raise ValueError(
                f"snapshots {late}: each must be a step between 1 and steps - 1 "
                f"(the last step's model is OUT/model)"
            )
        if self.stop_at and self.steps and self.stop_at > self.steps:
            raise ValueError(
                f"stop_at {self.stop_at} is past the schedule's last step {self.steps}"
            )
        return self


def conversations(data: Path) -> int:
    """How many conversations the training data holds, read before any model is: a line that is
    not one, or a file with none, is a UserError naming it."""
    count = 0
    for number, obj in read_numbered(data):
        try:
            get_format("openai").parse(obj)
        except FormatError as exc:
            raise UserError(f"{data}:{number}: not a conversation: {exc}") from None
        count += 1
    if not count:
        raise UserError(f"{data}: no conversations to train on")
    return count


@dataclass
class Prepared:
    """Everything a training run needs, built once: model, tokenizer, rows, and counts."""

    model: Any
    tokenizer: Any
    choice: Choice
    train_rows: list[Row]
    val_rows: list[Row]
    rendered: list[Rendered]  # every training conversation, those too long included
    val_ids: set[str]  # held out for the validation loss

    @property
    def counts(self) -> dict[str, int]:
        kept = [r for r in self.rendered if r.fits]
        return {
            "examples": len(kept),
            "too_long": len(self.rendered) - len(kept),
            "train_tokens": sum(len(r.example.input_ids) for r in kept),
        }


@dataclass
class Rendered:
    """One training conversation: its id, the record, and its tokens cut to max_length."""

    id: str
    record: dict[str, Any]
    example: Any

    @property
    def fits(self) -> bool:
        """Whether an assistant token is left within max_length (else nothing is learnt)."""
        return any(self.example.assistant_masks)


def _rendered(config: TrainConfig, tokenizer: Any, data: Path) -> list[Rendered]:
    """The training conversations (the test split left out), rendered and cut."""
    return [
        Rendered(
            record_id(record) or f"{data.name}:{number}",
            record,
            render_example(tokenizer, record, config.max_length),
        )
        for number, record in read_numbered(data)
        if record.get("meta", {}).get("split") != "test"
    ]


def _examples(config: TrainConfig, rendered: list[Rendered], data: Path) -> list[Rendered]:
    kept = [r for r in rendered if r.fits]
    if not kept:
        raise UserError(
            f"{data}: no conversation keeps an assistant token within "
            f"train.max_length={config.max_length}; raise it"
        )
    if len(kept) < len(rendered):
        log.warning(
            "%d of %d conversations have no assistant token within max_length=%d and "
            "are left out; raise train.max_length",
            len(rendered) - len(kept),
            len(rendered),
            config.max_length,
        )
    return kept


def prepare(config: TrainConfig, data: Path) -> Prepared:
    """Load the base model (with adapters for LoRA) and turn the data into training rows."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    scheme, _, name = config.base.partition(":")
    if scheme != "local" or not name:
        raise UserError(f"train.base {config.base!r}: expected local:smollm2 or local:PATH")
    choice = choose(config.precision, "train.precision")
    base = model_folder(name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(config.seed)
    model = transformers.AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = model.to(choice.device)
    if config.method == "lora":
        peft = require("peft", "train")
        model = peft.get_peft_model(
            model,
            peft.LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=config.lora_dropout,
                target_modules=config.target_modules,
                task_type="CAUSAL_LM",
            ),
        )
    checkpointing = config.gradient_checkpointing
    if checkpointing if checkpointing is not None else choice.device == "cuda":
        model.gradient_checkpointing_enable()
        if config.method == "lora":
            model.enable_input_require_grads()
    rendered = _rendered(config, tokenizer, data)
    kept = _examples(config, rendered, data)
    order = list(range(len(kept)))
    random.Random(config.seed).shuffle(order)
    n_val = int(len(kept) * config.val_share)
    val = [kept[i] for i in order[:n_val]]
    train = [kept[i] for i in order[n_val:]]
    return Prepared(
        model,
        tokenizer,
        choice,
        rows_of([r.example for r in train], config.max_length, config.packing),
        rows_of([r.example for r in val], config.max_length, config.packing),
        rendered,
        {r.id for r in val},
    )


def batches(rows: list[Row], batch_size: int, seed: int, epoch: int) -> list[list[Row]]:
    """One epoch's batches, in an order fixed by the seed and the epoch number."""
    order = list(range(len(rows)))
    random.Random(f"{seed}:{epoch}").shuffle(order)
    return [
        [rows[i] for i in order[start : start + batch_size]]
        for start in range(0, len(order), batch_size)
    ]


def batch_loss(model: Any, choice: Choice, tensors: dict[str, Any]) -> Any:
    """Mean loss over the batch's labelled tokens, under bf16 autocast where chosen.

    The vocabulary projection and the loss are worked out only at the positions whose next
    token is labelled (`logits_to_keep` with their indices): the same loss as the model's own
    with `labels=`, without the logits of the prompts, tool lists and results, which are most
    of a tool-calling conversation and whose projection over the vocabulary (and its softmax)
    is the costliest part of a small model's step."""
    torch = require("torch", "train")
    labels = tensors["labels"]
    targets = labels[:, 1:]
    keep = (targets != IGNORE).any(dim=0).nonzero().squeeze(1)
    with torch.autocast(choice.device, dtype=torch.bfloat16, enabled=choice.bf16):
        logits = model(
            input_ids=tensors["input_ids"],
            position_ids=tensors["position_ids"],
            logits_to_keep=keep,
            use_cache=False,  # with a cache transformers would not read the packed positions
        ).logits
    picked = targets[:, keep]
    return torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), picked.flatten(), ignore_index=IGNORE
    )


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then a cosine to zero at `total` (step counts from 0)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


class Trainer:
    """The loop: optimiser steps over packed batches, checkpoints, validation loss."""

    def __init__(self, config: TrainConfig, prepared: Prepared, out: Path):
        torch = require("torch", "train")
        self.config, self.prepared, self.out = config, prepared, out
        self.checkpoints = out / "checkpoints"
        self.device = prepared.choice.device
        params = [p for p in prepared.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
        per_epoch = math.ceil(len(prepared.train_rows) / config.batch_size)
        updates_per_epoch = max(1, math.ceil(per_epoch / config.grad_accum))
        self.total = config.steps or max(1, math.ceil(config.epochs * updates_per_epoch))
        self.warmup = max(1, round(config.warmup_ratio * self.total)) if config.warmup_ratio else 0
        self.end = min(config.stop_at or self.total, self.total)  # the last step this run takes
        self.step = 0
        self.log: list[dict[str, float]] = []
        self.tokens = 0

    def micro_batches(self):
        """Every micro-batch from the start, epoch after epoch, each a list of rows."""
        epoch = 0
        while True:
            yield from batches(
                self.prepared.train_rows, self.config.batch_size, self.config.seed, epoch
            )
            epoch += 1

    def run(self, on_step: Any = None, stop: threading.Event | None = None) -> dict[str, Any]:
        """Train to the last step (or `stop_at`). `on_step(step, last, tokens, seconds)` is
        called after each, with the tokens and seconds of this process's steps (a resumed run's
        earlier steps are not in them). Once `stop` is set, the step under way ends, a
        checkpoint is written there and StopStage is raised: the next run resumes from it."""
        model, choice = self.prepared.model, self.prepared.choice
        pad = self.prepared.tokenizer.pad_token_id
        self._resume()
        resumed_tokens = self.tokens
        stream = self.micro_batches()
        for _ in range(self.step * self.config.grad_accum):  # batches the checkpoint has seen
            next(stream)
        model.train()
        started = time.monotonic()
        while self.step < self.end:
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate(
                    self.step, self.total, self.config.learning_rate, self.warmup
                )
            total_loss = 0.0
            for _ in range(self.config.grad_accum):
                rows = next(stream)
                tensors = batch_tensors(rows, pad, self.device)
                loss = batch_loss(model, choice, tensors) / self.config.grad_accum
                loss.backward()
                total_loss += loss.detach().item()
                self.tokens += int(tensors["input_ids"].numel())
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            entry = {
                "step": self.step,
                "loss": total_loss,
                "lr": self.optimizer.param_groups[0]["lr"],
            }
            if self.step % self.config.save_steps == 0 or self.step == self.end:
                if self.prepared.val_rows:
                    entry["eval_loss"] = self.validation_loss()
                self.log.append(entry)
                self._save()
            else:
                self.log.append(entry)
            if self.step in self.config.snapshots and self.step < self.end:
                self._snapshot()
            if on_step is not None:
                here = self.tokens - resumed_tokens
                on_step(self.step, self.end, here, time.monotonic() - started)
            if stop is not None and stop.is_set() and self.step < self.end:
                if self.step % self.config.save_steps:
                    self._save()
                raise StopStage(f"training stopped at step {self.step} of {self.end}")
        return {
            "steps": self.step,
            "log": self.log,
            "wall_s": time.monotonic() - started,
            "tokens": self.tokens - resumed_tokens,
        }

    def validation_loss(self) -> float:
        torch = require("torch", "train")
        model, choice = self.prepared.model, self.prepared.choice
        pad = self.prepared.tokenizer.pad_token_id
        model.eval()
        total = weight = 0.0
        with torch.inference_mode():
            for start in range(0, len(self.prepared.val_rows), self.config.batch_size):
                rows = self.prepared.val_rows[start : start + self.config.batch_size]
                trained = sum(r.trained for r in rows)
                if trained:
                    loss = batch_loss(model, choice, batch_tensors(rows, pad, self.device))
                    total += float(loss) * trained
                    weight += trained
        model.train()
        return total / weight if weight else math.nan

    def _save(self) -> None:
        """A checkpoint of the trainable weights, optimiser, step and log; the last two kept."""
        torch = require("torch", "train")
        model = self.prepared.model
        trainable = {n: p.detach().cpu() for n, p in model.named_parameters() if p.requires_grad}
        with replacing_folder(self.checkpoints / f"checkpoint-{self.step}") as folder:
            torch.save(
                {
                    "weights": trainable,
                    "optimizer": self.optimizer.state_dict(),
                    "step": self.step,
                    "tokens": self.tokens,
                    "log": self.log,
                },
                folder / "state.pt",
            )
        for old in sorted(self._saved(), key=lambda p: int(p.name.split("-")[1]))[:-2]:
            shutil.rmtree(old, ignore_errors=True)

    def _snapshot(self) -> None:
        """The model as it is now in OUT/model-step-N (see `write_model`)."""
        model = copy.deepcopy(self.prepared.model)
        write_model(
            self.config, model, self.prepared.tokenizer, self.out / f"model-step-{self.step}"
        )

    def _saved(self) -> list[Path]:
        if not self.checkpoints.exists():
            return []
        return [p for p in self.checkpoints.glob("checkpoint-*") if p.name.split("-")[1].isdigit()]

    def _resume(self) -> None:
        torch = require("torch", "train")
        saved = sorted(self._saved(), key=lambda p: int(p.name.split("-")[1]))
        if not saved:
            return
        state = torch.load(saved[-1] / "state.pt", map_location=self.device, weights_only=False)
        parameters = dict(self.prepared.model.named_parameters())
        with torch.no_grad():
            for name, value in state["weights"].items():
                parameters[name].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.tokens, self.log = state["step"], state["tokens"], state["log"]
        log.info("resuming from %s (step %d of %d)", saved[-1], self.step, self.total)


def write_model(config: TrainConfig, model: Any, tokenizer: Any, folder: Path) -> None:
    """The trained model, merged, in `folder` (usable as local:FOLDER), and for LoRA its
    adapter alone in FOLDER/adapter (local:FOLDER/adapter merges it into its base again);
    written whole or not at all (`replacing_folder`). `model` is merged in place."""
    with replacing_folder(folder) as partial:
        if config.method == "lora":
            model.save_pretrained(partial / "adapter")
            write_json(partial / "adapter" / ADAPTER_BASE, {"base": config.base})
            model = model.merge_and_unload()
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)


class Progress:
    """A line a step: the rate and the time left, from the steps this process has run (a
    resumed run counts from the step it resumed at)."""

    def __init__(self) -> None:
        self.before: int | None = None  # the last step done before this process

    def __call__(self, step: int, total: int, tokens: int, elapsed: float) -> None:
        if self.before is None:
            self.before = step - 1
        rate = tokens / elapsed if elapsed else 0.0
        left = (total - step) * elapsed / (step - self.before)
        log.info("train step %d/%d, %.0f tokens/s, about %.0f s left", step, total, rate, left)


def train(
    config: TrainConfig,
    data: Path,
    out: Path,
    on_step: Any = None,
    stop: threading.Event | None = None,
) -> tuple[dict[str, Any], Prepared]:
    """Fine-tune on an `openai` JSONL; write the merged model to OUT/model.

    Records of the test split (`meta.split`) are left out, so the curate stage's output, which
    keeps the thinking the OpenAI fine-tuning export drops, can be given as it is.

    A killed run resumes from its last checkpoint in OUT; whether those checkpoints are this
    run's (same config, same data) is the runner's to say (see `fcsft.train.step`), which
    empties OUT when they are not. `on_step` is called after each step (see `Trainer.run`;
    default: a `Progress` line); `stop`, once set, ends the run at a checkpoint. Returns the
    summary and what was prepared (which conversations were trained on, which were too long).
    """
    conversations(data)
    out.mkdir(parents=True, exist_ok=True)
    prepared = prepare(config, data)
    trainer = Trainer(config, prepared, out)
    result = trainer.run(on_step or Progress(), stop)
    losses = [e["loss"] for e in result["log"]]
    evals = [e["eval_loss"] for e in result["log"] if "eval_loss" in e]
    target = out / "model"
    write_model(config, prepared.model, prepared.tokenizer, target)
    summary = {
        "base": config.base,
        "steps": result["steps"],
        "examples": prepared.counts["examples"],
        "too_long": prepared.counts["too_long"],  # no assistant token within max_length: left out
        "train_tokens": prepared.counts["train_tokens"],
        "rows": len(prepared.train_rows),
        "wall_s": round(result["wall_s"], 1),
        "tokens_per_s": round(result["tokens"] / result["wall_s"], 1) if result["wall_s"] else None,
        "precision": prepared.choice.to_json(),
        "loss_first": losses[0] if losses else math.nan,
        "loss_last": losses[-1] if losses else math.nan,
        "eval_loss": evals[-1] if evals else None,
        "losses": losses,
        "config": config.model_dump(mode="json"),
        "template": "fcsft tagged protocol: fcsft.formats.chat.text_messages + chat template",
    }
    (target / "fcsft.json").write_text(json.dumps(summary, indent=2))
    return summary, prepared
