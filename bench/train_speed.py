"""Training throughput of `fcsft train` against a plain torch loop doing the same work.

Run: python bench/train_speed.py   (no arguments; about 5 minutes on 2 CPU cores)

LoRA r=16 on the embedded SmolLM2-135M over synthetic tool-calling conversations (half of them
short general chat, as in a real 30% mix), batch 4, max_length 512, packed. The project's
trainer and a plain loop (forward, backward, AdamW step; nothing else) take turns, one step
each, on the same model and the same batches, so a busy neighbour slows both alike; the first
step of each (allocation, warm-up) and the trainer's last (it writes a checkpoint) are left
out. Figures:

- tokens_per_s: the trainer with `precision: auto`; plain_loop_tokens_per_s: the plain loop in
  the same precision; vs_plain_loop: their ratio (target >= 0.8).
- bf16_vs_fp32: the trainer's tokens/s with `precision: bf16` over `fp32`, in this run (on a
  CPU without AMX, bf16 is slower: `auto` picks fp32 there; on one with no bf16 at all,
  where `precision: bf16` is refused, it is not measured).
- padding_share / padding_share_unpacked: padded positions over all positions in an epoch's
  batches, packed and one conversation a row; bin_fill: how full the packed rows are.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch

from _common import bf16_refused
from fcsft.jsonl import write_jsonl
from fcsft.train.packing import batch_tensors
from fcsft.train.run import TrainConfig, Trainer, batch_loss, batches, prepare
from validate_speed import synthetic

STEPS = 4  # per side; the first (and the trainer's last) are not timed
RATE_STEPS = 3  # per precision; the second step is timed
BATCH, LENGTH = 4, 512


def general(index: int) -> dict:
    """A short no-tool exchange: real data mixes these with long tool conversations."""
    return {
        "meta": {"id": f"g{index}"},
        "messages": [
            {"role": "user", "content": f"Give me a synonym for word number {index}."},
            {"role": "assistant", "content": f"Synonym {index}: term."},
        ],
    }


def config(precision: str, steps: int = STEPS) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=BATCH,
        max_length=LENGTH,
        val_share=0.0,
        save_steps=10_000,
        precision=precision,  # type: ignore[arg-type]
    )


def padding(rows) -> tuple[float, float]:
    """(padded share, fill of max_length) over one epoch's batches."""
    padded = total = tokens = 0
    for group in batches(rows, BATCH, 0, 0):
        width = max(len(r.input_ids) for r in group)
        used = sum(len(r.input_ids) for r in group)
        padded += width * len(group) - used
        total += width * len(group)
        tokens += used
    return padded / total, tokens / (len(rows) * LENGTH)


def side_by_side(data: Path, out: Path) -> dict[str, float]:
    """The trainer's steps and plain-loop steps, alternating, on one model and its batches."""
    prepared = prepare(config("auto"), data)
    trainer = Trainer(config("auto"), prepared, out)
    model, choice = prepared.model, prepared.choice
    pad = prepared.tokenizer.pad_token_id
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    stream = batches(prepared.train_rows, BATCH, 1, 0)
    times = {"trainer": [], "plain": []}
    tokens = {"trainer": [], "plain": []}
    last = {"tokens": 0, "end": time.perf_counter()}

    def plain_step(step, total, trained_tokens, elapsed):
        now = time.perf_counter()
        times["trainer"].append(now - last["end"])
        tokens["trainer"].append(trained_tokens - last["tokens"])
        tensors = batch_tensors(stream[step], pad, choice.device)
        started = time.perf_counter()
        batch_loss(model, choice, tensors).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times["plain"].append(time.perf_counter() - started)
        tokens["plain"].append(int(tensors["input_ids"].numel()))
        last["tokens"], last["end"] = trained_tokens, time.perf_counter()

    trainer.run(plain_step)
    trainer_rate = sum(tokens["trainer"][1:-1]) / sum(times["trainer"][1:-1])
    plain_rate = sum(tokens["plain"][1:]) / sum(times["plain"][1:])
    print(
        "trainer step s",
        [round(t, 2) for t in times["trainer"]],
        "plain step s",
        [round(t, 2) for t in times["plain"]],
        file=sys.stderr,
    )
    return {
        "tokens_per_s": trainer_rate,
        "plain_loop_tokens_per_s": plain_rate,
        "vs_plain_loop": trainer_rate / plain_rate,
        "precision_bf16": float(choice.bf16),
    }


def trainer_rate(data: Path, out: Path, precision: str) -> float:
    """Tokens/s of the trainer alone in a precision, over its middle steps."""
    prepared = prepare(config(precision, RATE_STEPS), data)
    marks: list[tuple[float, int]] = []
    Trainer(config(precision, RATE_STEPS), prepared, out).run(
        lambda step, total, trained, elapsed: marks.append((time.perf_counter(), trained))
    )
    (t0, n0), (t1, n1) = marks[0], marks[-2]
    return (n1 - n0) / (t1 - t0)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        write_jsonl(data, [synthetic(i) for i in range(150)] + [general(i) for i in range(150)])
        figures = side_by_side(data, Path(tmp) / "side")
        figures["padding_share"], figures["bin_fill"] = padding(
            prepare(config("fp32"), data).train_rows
        )
        unpacked = config("fp32").model_copy(update={"packing": False})
        figures["padding_share_unpacked"], _ = padding(prepare(unpacked, data).train_rows)
        if not bf16_refused():
            fp32 = trainer_rate(data, Path(tmp) / "fp32", "fp32")
            bf16 = trainer_rate(data, Path(tmp) / "bf16", "bf16")
            figures["bf16_vs_fp32"] = bf16 / fp32
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}
    print(json.dumps({"bench": "train_speed", "figures": rounded}))


if __name__ == "__main__":
    main()
