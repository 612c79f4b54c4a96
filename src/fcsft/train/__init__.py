"""LoRA (or full) SFT with loss on assistant tokens only; extra `[train]`."""
