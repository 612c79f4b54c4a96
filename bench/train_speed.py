"""Training throughput on this machine and the share of padding per batch.

Run: python bench/train_speed.py   (no arguments; a few minutes on 2 CPU cores)
Trains LoRA r=16 on the embedded SmolLM2-135M for a few steps over synthetic tool-calling
conversations, with packing (the default) and without, and reports tokens/s with packing and
the share of padding tokens in the batches each way (half the conversations are short
general chat, as in a real 30% mix). Target: padding under 10% with packing. With packing,
TRL's best-fit-decreasing packer is padding-free (sequences are concatenated), so the
padding is zero by construction; `bin_fill` says how full the packed sequences are.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fcsft.jsonl import write_jsonl
from fcsft.train.run import TrainConfig, build_trainer
from validate_speed import synthetic

STEPS = 4


def general(index: int) -> dict:
    """A short no-tool exchange: real data mixes these with long tool conversations."""
    return {
        "tools": [],
        "meta": {"id": f"g{index}"},
        "messages": [
            {"role": "user", "content": f"Give me a synonym for word number {index}."},
            {"role": "assistant", "content": f"Synonym {index}: term."},
        ],
    }


def padding_share(trainer, batches: int = 8) -> float:
    """Padded positions over all positions, over the first batches the trainer would see."""
    pad = total = 0
    for number, batch in enumerate(trainer.get_train_dataloader()):
        if number == batches:
            break
        total += batch["input_ids"].numel()
        if "attention_mask" in batch:
            pad += int((batch["attention_mask"] == 0).sum())
    return pad / total if total else 0.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        write_jsonl(data, [synthetic(i) for i in range(150)] + [general(i) for i in range(150)])
        figures = {}
        for packing in (False, True):
            config = TrainConfig(
                max_steps=STEPS,
                batch_size=4,
                max_length=512,
                packing=packing,
                val_share=0.0,
                save_steps=1000,
            )
            trainer, _ = build_trainer(config, data, Path(tmp) / f"out-{packing}")
            share = padding_share(trainer)
            if packing:
                result = trainer.train()
                metrics = result.metrics
                # TRL logs the running count of tokens trained on as num_tokens.
                tokens = max(e.get("num_tokens", 0) for e in trainer.state.log_history)
                figures["tokens_per_s"] = round(tokens / metrics["train_runtime"], 1)
                figures["bin_fill"] = round(tokens / (STEPS * 4 * 512), 4)
                figures["padding_share"] = round(share, 4)
            else:
                figures["padding_share_unpacked"] = round(share, 4)
            print(f"packing={packing}: padding {share:.1%}", file=sys.stderr)
    print(json.dumps({"bench": "train_speed", "figures": figures}))


if __name__ == "__main__":
    main()
