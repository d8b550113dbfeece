"""The decode loop for a stop rule every trigger token satisfies (the one-line step), kept on the
device: no host read per decoded token.

Sampled tokens and their log-probabilities are written into preallocated device tensors, and
which rows are still writing is a device mask; the host looks at the batch only every
``sync_every`` tokens, to stop when every row has ended and to drop finished rows from the
batch. On a GPU each host read waits for every queued kernel, so reading once per token would
serialise the loop; on the CPU a read costs nothing and checking every token stops soonest,
which is why ``sync_every`` is 1 there (and the loop then behaves exactly as a per-token one).
(Nucleus sampling on the CPU reads one flag per token, whether its top-k shortcut covers
``top_p``; on an accelerator it sorts the whole vocabulary instead: ``sampling.sample_next``.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

# Host reads per token on an accelerator: a finished row decodes at most this many tokens more.
ACCELERATOR_SYNC_EVERY = 8

Sampler = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class DecodeState:
    """The batch after the prefill, one row per candidate."""

    logits: torch.Tensor  # [B, V] float logits of the next token
    mask: torch.Tensor  # [B, L] attention mask
    next_pos: torch.Tensor  # [B] position id of the next token
    cache: Any  # the KV cache, updated in place


@dataclass
class Decoded:
    """Per original row: the tokens it wrote, their log-probs, and how it ended."""

    tokens: list[list[int]]
    logprobs: list[list[float]]
    ended: list[bool]  # wrote a stop token (a trigger or EOS) before the token limit
    by_eos: list[bool]


def default_sync_every(device: torch.device) -> int:
    return 1 if device.type == "cpu" else ACCELERATOR_SYNC_EVERY


def rows_to_keep(alive: torch.Tensor, n_alive: int, drop_finished: bool) -> torch.Tensor | None:
    """The batch rows still writing, once the finished ones are half the batch (None: keep all).

    Not sooner: a small-batch decode step costs about the same at any row count (the weights are
    read once either way), while each compaction copies the whole KV cache."""
    if not drop_finished or 2 * n_alive > alive.numel():
        return None
    return alive.nonzero().squeeze(-1)


def keep_rows(state: DecodeState, idx: torch.Tensor) -> None:
    """Shrink the cache, mask and positions to the batch rows ``idx``."""
    state.cache.batch_select_indices(idx)
    state.mask, state.next_pos = state.mask[idx], state.next_pos[idx]


def continue_batch(
    forward: Callable[[torch.Tensor, DecodeState], torch.Tensor],
    state: DecodeState,
    active: torch.Tensor,
    chosen: torch.Tensor,
    alive: torch.Tensor,
    drop_finished: bool,
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """After a step the host has looked at: None when every row has ended; else drop the finished
    rows when due, feed each row's new token, and return the batch's (active, alive)."""
    n_alive = int(alive.sum())
    if n_alive == 0:
        return None
    idx = rows_to_keep(alive, n_alive, drop_finished)
    if idx is not None:
        keep_rows(state, idx)
        active, chosen, alive = active[idx], chosen[idx], alive[idx]
    decode_step(forward, state, chosen)
    return active, alive


def decode_step(
    forward: Callable[[torch.Tensor, DecodeState], torch.Tensor], state: DecodeState, tokens: torch.Tensor
) -> None:
    """Feed each row's new token: one more mask column, the next logits, the next position."""
    state.mask = torch.cat([state.mask, state.mask.new_ones((state.mask.shape[0], 1))], dim=-1)
    state.logits = forward(tokens, state)
    state.next_pos = state.next_pos + 1


def decode_exact(
    forward: Callable[[torch.Tensor, DecodeState], torch.Tensor],
    state: DecodeState,
    sample: Sampler,
    stop: torch.Tensor,
    eos: torch.Tensor,
    max_new_tokens: int,
    *,
    drop_finished: bool,
    sync_every: int,
) -> Decoded:
    """Decode until every row wrote a token in ``stop`` (a [V] bool mask; ``eos`` marks which of
    them are EOS) or ``max_new_tokens``. ``forward(tokens, state)`` runs one decode step (it
    updates ``state.cache``) and returns the next logits."""
    device = state.logits.device
    total = state.logits.shape[0]
    out_tokens = torch.full((total, max_new_tokens), -1, dtype=torch.long, device=device)
    out_lps = torch.zeros((total, max_new_tokens), dtype=torch.float32, device=device)
    ended = torch.zeros(total, dtype=torch.bool, device=device)
    by_eos = torch.zeros(total, dtype=torch.bool, device=device)
    active = torch.arange(total, device=device)  # original row of each batch row
    alive = torch.ones(total, dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        logprobs = torch.log_softmax(state.logits, dim=-1)
        chosen = sample(state.logits)
        chosen_lp = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
        # Rows that ended earlier keep decoding until the next host read; their tokens are not kept.
        out_tokens[active, step] = torch.where(alive, chosen, out_tokens[active, step])
        out_lps[active, step] = torch.where(alive, chosen_lp, out_lps[active, step])
        stopped = stop[chosen] & alive
        ended[active] |= stopped
        by_eos[active] |= eos[chosen] & alive
        alive = alive & ~stopped
        if step == max_new_tokens - 1:
            break
        if (step + 1) % sync_every:
            decode_step(forward, state, chosen)
            continue
        batch = continue_batch(forward, state, active, chosen, alive, drop_finished)  # the host read
        if batch is None:
            break
        active, alive = batch
    lengths = (out_tokens >= 0).sum(dim=-1).tolist()
    tokens, lps = out_tokens.tolist(), out_lps.tolist()
    return Decoded(
        [row[:n] for row, n in zip(tokens, lengths, strict=True)],
        [row[:n] for row, n in zip(lps, lengths, strict=True)],
        ended.tolist(),
        by_eos.tolist(),
    )
