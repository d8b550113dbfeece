"""A tiny random Llama with the character vocabulary, built in-process (tests, smoke runs)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from presrm.model.charvocab import build_char_tokenizer


def tiny_config(vocab_size: int) -> LlamaConfig:
    """A 2-layer Llama small enough to build and train in milliseconds."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def build_tiny_model(seed: int = 0) -> tuple[LlamaForCausalLM, Any]:
    """A random tiny Llama and the character tokenizer; same seed → same weights."""
    tokenizer = build_char_tokenizer()
    config = tiny_config(len(tokenizer))
    # fork_rng: building the model must not disturb the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tokenizer
