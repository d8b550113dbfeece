"""Token ids of prompts and continuations, and left padding for batches."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from presrm.model.policy import Policy


def _add_special(policy: Policy) -> bool:
    # A chat-template prompt already has its specials; a raw prompt gets the tokenizer's BOS.
    return not policy.chat


def encode_prompts(policy: Policy, prompts: Sequence[str]) -> list[list[int]]:
    enc = policy.tokenizer(list(prompts), add_special_tokens=_add_special(policy))
    return [list(ids) for ids in enc["input_ids"]]


def encode_continuations(policy: Policy, texts: Sequence[str]) -> list[list[int]]:
    if not texts:
        return []
    enc = policy.tokenizer(list(texts), add_special_tokens=False)
    return [list(ids) for ids in enc["input_ids"]]


def left_pad(
    rows: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-align token rows: returns input_ids and attention_mask, both [B, max_len]."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def position_ids(mask: torch.Tensor) -> torch.Tensor:
    # Same as transformers' generate: position = number of real tokens before, pads at 0.
    return (mask.cumsum(-1) - 1).clamp(min=0)
