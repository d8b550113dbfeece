"""Choosing the next token: greedy or nucleus sampling, and which tokens can end a text."""

from __future__ import annotations

import weakref
from typing import Any

import torch

from presrm.steps import STEP_END

_TOKEN_TEXTS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()
_TRIGGER_TABLES: weakref.WeakKeyDictionary[Any, dict[tuple[str, int], torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)


def _token_texts(tokenizer: Any) -> list[str]:
    """Every token's text, decoded once per tokenizer (~0.5 s for a 49k vocabulary)."""
    texts = _TOKEN_TEXTS.get(tokenizer)
    if texts is None or len(texts) != len(tokenizer):
        texts = tokenizer.batch_decode([[i] for i in range(len(tokenizer))], skip_special_tokens=False)
        _TOKEN_TEXTS[tokenizer] = texts
        _TRIGGER_TABLES.pop(tokenizer, None)  # tokens were added: rebuild the tables
    return texts


def trigger_token_mask(tokenizer: Any, vocab_size: int, triggers: str) -> torch.Tensor:
    """Bool [vocab_size]: which tokens' text contains any of ``triggers`` (BPE merges "\\n" into
    tokens); cached per tokenizer and rebuilt if tokens are added."""
    texts = _token_texts(tokenizer)
    tables = _TRIGGER_TABLES.setdefault(tokenizer, {})
    key = (triggers, vocab_size)
    if key not in tables:
        n = min(vocab_size, len(texts))
        hits = [any(c in t for c in triggers) for t in texts[:n]]
        tables[key] = torch.tensor(hits + [False] * (vocab_size - n), dtype=torch.bool)
    return tables[key]


def newline_token_mask(tokenizer: Any, vocab_size: int) -> torch.Tensor:
    """Bool [vocab_size]: which tokens' text contains a newline."""
    return trigger_token_mask(tokenizer, vocab_size, STEP_END)


_NUCLEUS_FIRST_K = 256  # tokens tried before sorting the whole vocabulary


def sample_next(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    """Next token per row: greedy at temperature 0, else nucleus sampling at ``temperature``."""
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p >= 1.0:
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
    if probs.device.type != "cpu":
        # On an accelerator sorting the whole vocabulary is cheap, and asking whether a shortcut
        # suffices would be a host read (a wait for every queued kernel) per token.
        top, order = probs.sort(dim=-1, descending=True)
    else:
        # The nucleus is almost always inside the top few hundred tokens: sorting only those is
        # exact whenever their mass reaches top_p in every row, and far cheaper than sorting 50k.
        k = min(_NUCLEUS_FIRST_K, probs.shape[-1])
        top, order = probs.topk(k, dim=-1)
        if k < probs.shape[-1] and bool((top.sum(dim=-1) < top_p).any()):
            top, order = probs.sort(dim=-1, descending=True)
    before = top.cumsum(dim=-1) - top
    # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
    top = top.masked_fill(before >= top_p, 0.0)
    choice = torch.multinomial(top, 1, generator=generator)
    return order.gather(-1, choice).squeeze(-1)
