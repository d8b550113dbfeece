"""Per-token log-probabilities (and entropies) of response tokens without a whole-batch
full-vocabulary float32 logits tensor.

The LM head is applied to the final hidden states of a chunk of ``chunk`` response tokens at a
time; only that chunk's ``[chunk, V]`` logits exist, in float32 inside the chunk. Under autograd
each chunk is checkpointed (its logits are recomputed in the backward pass), so the backward
does not keep them either: peak memory for the vocabulary is one chunk, not
``minibatch × response length × V`` (several copies of it with the float32 cast, the softmax
and its gradient). The numbers are those of ``log_softmax(lm_head(h).float())``.

This needs the model's logits to be its output embedding applied to its last hidden state
(true of Llama, Qwen2, Mistral, SmolLM2 …); :func:`check_lm_head` verifies it on a real
forward pass, so a model that scales or soft-caps its logits is refused rather than
trained on the wrong numbers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


def output_head(model: Any) -> nn.Linear:
    """The LM head (``get_output_embeddings``) of a transformers model or a PeftModel around one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = base.get_output_embeddings()
    if not isinstance(head, nn.Linear):
        raise ValueError(f"{type(base).__name__}: its output embedding is not a linear LM head")
    return head


def check_lm_head(head: nn.Linear, hidden_last: torch.Tensor, logits_last: torch.Tensor) -> None:
    """Raise unless ``head(hidden_last)`` reproduces the model's own logits (same positions)."""
    with torch.no_grad():
        mine = head(hidden_last.to(head.weight.dtype)).float()
        theirs = logits_last.float()
        scale = theirs.abs().max().clamp(min=1.0)
        if mine.shape != theirs.shape or (mine - theirs).abs().max() > 1e-2 * scale:
            raise ValueError(
                "the model's logits are not its LM head applied to its last hidden state (scaled or"
                " soft-capped logits?); set train.ppo.logprob_chunk = 0"
            )


def _chunk_stats(
    hidden: torch.Tensor, ids: torch.Tensor, head: nn.Linear
) -> tuple[torch.Tensor, torch.Tensor]:
    logp = torch.log_softmax(head(hidden).float(), dim=-1)
    picked = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy


def chunked_token_stats(
    hidden: torch.Tensor, ids: torch.Tensor, head: nn.Linear, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of ``ids[n]`` and the entropy of the next-token distribution at ``hidden[n]``.

    ``hidden``: ``[N, H]`` states that predict the tokens ``ids`` ``[N]``; returns two float32
    ``[N]`` tensors. ``chunk`` tokens at a time (``chunk`` >= 1).
    """
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    grad = torch.is_grad_enabled() and (hidden.requires_grad or head.weight.requires_grad)
    picked, entropies = [], []
    for start in range(0, hidden.shape[0], chunk):
        h, t = hidden[start : start + chunk], ids[start : start + chunk]
        if grad:
            lp, ent = checkpoint(_chunk_stats, h, t, head, use_reentrant=False)
        else:
            lp, ent = _chunk_stats(h, t, head)
        picked.append(lp)
        entropies.append(ent)
    if not picked:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, empty
    return torch.cat(picked), torch.cat(entropies)


def response_token_stats(
    hidden: torch.Tensor, response_ids: torch.Tensor, mask: torch.Tensor, head: nn.Linear, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, T]`` log-probs and entropies of the response tokens from the states ``hidden``
    ``[B, T, H]`` that predict them; only positions where ``mask`` is set are computed (0 elsewhere)."""
    keep = mask.bool()
    lp, ent = chunked_token_stats(hidden[keep], response_ids[keep], head, chunk)
    out_lp = torch.zeros(response_ids.shape, dtype=torch.float32, device=hidden.device)
    out_ent = torch.zeros_like(out_lp)
    return out_lp.masked_scatter(keep, lp), out_ent.masked_scatter(keep, ent)


def lm_response_stats(
    lm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    response_ids: torch.Tensor,
    response_mask: torch.Tensor,
    chunk: int,
    *,
    check_head: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the causal LM ``lm`` once on prompt (left-padded) + response (right-padded) and return
    the response tokens' log-probs and entropies ``[B, T]`` (float32) and the final hidden states
    ``[B, P + T, H]``.

    ``chunk`` > 0: the model computes logits for its last position only and the response's come
    from :func:`response_token_stats`; ``check_head`` compares those last-position logits with the
    LM head applied by hand. ``chunk`` = 0: the model's own logits for the whole response, then
    float32 log-softmax over all of them at once (the unchunked reference computation).
    """
    t_len = response_ids.shape[1]
    out = lm(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        output_hidden_states=True,
        use_cache=False,
        logits_to_keep=1 if chunk else t_len + 1,
    )
    hidden = out.hidden_states[-1]
    p = input_ids.shape[1] - t_len  # the state before response token t sits at column p + t - 1
    if not chunk:
        logp = torch.log_softmax(out.logits[:, :t_len].float(), dim=-1)
        picked = logp.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
        entropy = -(logp.exp() * logp).sum(-1)
        zero = torch.zeros_like(picked)
        keep = response_mask.bool()
        return torch.where(keep, picked, zero), torch.where(keep, entropy, zero), hidden
    head = output_head(lm)
    if check_head:
        check_lm_head(head, hidden[:, -1:], out.logits[:, -1:])
    lp, ent = response_token_stats(hidden[:, p - 1 : p - 1 + t_len], response_ids, response_mask, head, chunk)
    return lp, ent, hidden
