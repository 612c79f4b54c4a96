"""A randomly initialised Llama of a few thousand weights, built here: real transformers code
paths (attention, caches, masks) for tests that must not load the embedded model."""

from __future__ import annotations

import torch
import transformers


def tiny_llama(vocab: int = 96, seed: int = 0, attention: str | None = None, **config):
    torch.manual_seed(seed)
    settings = dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    if attention is not None:
        settings["attn_implementation"] = attention
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**settings | config)).eval()
