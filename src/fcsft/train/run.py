"""`fcsft train`: TRL's SFTTrainer with PEFT LoRA (or full fine-tuning), assistant tokens only.

fcsft renders and masks the conversations itself (`train.render`), so the loss is right even
for templates without `{% generation %}` markers, and hands TRL `input_ids` plus
`assistant_masks`, from which it builds the labels and packs sequences. The output folder is
a merged transformers model with its tokenizer and chat template, usable as `local:PATH`.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from fcsft.errors import UserError, require
from fcsft.formats import FormatError, get_format
from fcsft.formats.chat_tokens import render_example
from fcsft.jsonl import read_jsonl, read_numbered
from fcsft.models.weights import model_folder
from fcsft.section import Section
from fcsft.stage import Stage, file_hash, stage_key

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
    """Passes over the training data (ignored when max_steps is set)."""
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimiser steps."""
    batch_size: int = Field(4, ge=1)
    """Sequences (packed or not) per device per step. On CPU prefer 1 with `grad_accum` for the
    rest: at max_length 1024, SmolLM2 took 92 s per 4 sequences at once and 43 s one at a time
    (4 at once held 13 GB and spent its time in the kernel, allocating)."""
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
    """Trade compute for memory; off on CPU by default (it costs ~50% there), on elsewhere."""
    save_steps: int = Field(50, ge=1)
    """Checkpoint every this many steps (a killed run resumes from the last one)."""
    seed: int = 0
    """Seed for the validation split and the trainer."""


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


def _datasets(config: TrainConfig, tokenizer: Any, data: Path):
    datasets = require("datasets", "train")
    rendered = [render_example(tokenizer, record, config.max_length) for record in read_jsonl(data)]
    examples = [e for e in rendered if any(e.assistant_masks)]
    if not examples:
        raise UserError(
            f"{data}: no conversation keeps an assistant token within "
            f"train.max_length={config.max_length}; raise it"
        )
    if len(examples) < len(rendered):
        log.warning(
            "%d of %d conversations have no assistant token within max_length=%d and "
            "are left out; raise train.max_length",
            len(rendered) - len(examples),
            len(rendered),
            config.max_length,
        )
    rng = random.Random(config.seed)
    order = list(range(len(examples)))
    rng.shuffle(order)
    n_val = int(len(examples) * config.val_share)
    split = {"validation": order[:n_val], "train": order[n_val:]}
    built = {
        name: datasets.Dataset.from_dict(
            {
                "input_ids": [examples[i].input_ids for i in indices],
                "assistant_masks": [examples[i].assistant_masks for i in indices],
            }
        )
        for name, indices in split.items()
        if indices
    }
    counts = {
        "examples": len(examples),
        "too_long": len(rendered) - len(examples),
        "train_tokens": sum(len(e.input_ids) for e in examples),
    }
    return built, counts


def build_trainer(config: TrainConfig, data: Path, out: Path) -> tuple[Any, dict[str, Any]]:
    """The configured SFTTrainer, and what `train` reports about its data."""
    torch = require("torch", "train")
    transformers = require("transformers", "train")
    trl = require("trl", "train")
    scheme, _, name = config.base.partition(":")
    if scheme != "local" or not name:
        raise UserError(f"train.base {config.base!r}: expected local:smollm2 or local:PATH")
    base = model_folder(name)
    tokenizer = transformers.AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    cuda = torch.cuda.is_available()
    model = transformers.AutoModelForCausalLM.from_pretrained(
        base, dtype=torch.bfloat16 if cuda else torch.float32
    )
    sets, counts = _datasets(config, tokenizer, data)
    peft_config = None
    if config.method == "lora":
        peft = require("peft", "train")
        peft_config = peft.LoraConfig(
            r=config.lora_r,
            lora_alpha=config.lora_alpha,
            lora_dropout=config.lora_dropout,
            target_modules=config.target_modules,
            task_type="CAUSAL_LM",
        )
    checkpoints = out / "checkpoints"
    args = trl.SFTConfig(
        output_dir=str(checkpoints),
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=config.warmup_ratio,  # a float below 1 is read as a share of the steps
        max_length=config.max_length,
        packing=config.packing,
        gradient_checkpointing=bool(
            config.gradient_checkpointing if config.gradient_checkpointing is not None else cuda
        ),
        eval_strategy="steps" if "validation" in sets else "no",
        eval_steps=config.save_steps,
        save_steps=config.save_steps,
        save_total_limit=2,
        logging_steps=1,
        bf16=cuda,
        use_cpu=not cuda,
        seed=config.seed,
        report_to=[],
        dataloader_num_workers=0,
    )
    trainer = trl.SFTTrainer(
        model=model,
        args=args,
        train_dataset=sets["train"],
        eval_dataset=sets.get("validation"),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    return trainer, {"tokenizer": tokenizer, "checkpoints": checkpoints, **counts}


def train(config: TrainConfig, data: Path, out: Path) -> dict[str, Any]:
    """Fine-tune on an exported `openai` JSONL; write the merged model to OUT/model.

    A finished run with the same config and data is not repeated; checkpoints of a run with
    another config or other data are discarded rather than resumed.
    """
    conversations(data)
    key = stage_key(
        Stage("train", lambda obj: [], config.model_dump(mode="json")), file_hash([data])
    )
    marker = out / "model" / "fcsft.json"
    if marker.exists() and json.loads(marker.read_text()).get("key") == key:
        return json.loads(marker.read_text())
    state = out / "_key"
    if not state.exists() or state.read_text() != key:  # checkpoints of some other run
        shutil.rmtree(out / "checkpoints", ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    state.write_text(key)
    trainer, info = build_trainer(config, data, out)
    tokenizer, checkpoints = info["tokenizer"], info["checkpoints"]
    resume = any(checkpoints.glob("checkpoint-*")) if checkpoints.exists() else False
    started = time.monotonic()
    result = trainer.train(resume_from_checkpoint=resume or None)
    wall = time.monotonic() - started
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    merged = trainer.model.merge_and_unload() if config.method == "lora" else trainer.model
    target = out / "model"
    merged.save_pretrained(target)
    tokenizer.save_pretrained(target)
    summary = {
        "base": config.base,
        "steps": result.global_step,
        "examples": info["examples"],
        "too_long": info["too_long"],  # no assistant token within max_length: left out
        "train_tokens": info["train_tokens"],
        "wall_s": round(wall, 1),
        "loss_first": losses[0] if losses else math.nan,
        "loss_last": losses[-1] if losses else math.nan,
        "eval_loss": evals[-1] if evals else None,
        "losses": losses,
        "config": config.model_dump(mode="json"),
        "template": "fcsft tagged protocol: fcsft.formats.chat.text_messages + chat template",
        "key": key,
    }
    (target / "fcsft.json").write_text(json.dumps(summary, indent=2))
    return summary
