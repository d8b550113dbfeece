"""Log-probabilities of given continuations and of single next tokens (no sampling)."""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from presrm.model.encoding import encode_continuations, encode_prompts, left_pad, position_ids
from presrm.model.generation import base_config, cache_kwarg, eval_mode, pad_token_id, prefill
from presrm.model.policy import Policy


def sequence_logprobs(
    policy: Policy,
    prompts: list[str],
    continuations: list[str],
    *,
    batch_size: int = 16,
    share_prefix: bool = True,
) -> list[float]:
    """Sum of log P(continuation tokens | prompt) for each pair (0.0 for an empty continuation).

    With ``share_prefix`` each distinct prompt is run through the model once and its KV cache
    shared by all of its continuations: the judge scores several candidate steps after the same
    prefix, which is most of every row, so this does the prefix's work once instead of once per
    candidate. Without it (or for a model whose cache is not plain per-layer keys and values)
    every pair runs as one whole sequence.
    """
    if len(prompts) != len(continuations):
        raise ValueError("prompts and continuations must have the same length")
    if not prompts:
        return []
    p_ids = encode_prompts(policy, prompts)
    c_ids = encode_continuations(policy, continuations)
    results = [0.0] * len(prompts)
    if not share_prefix:
        with eval_mode(policy.model), torch.inference_mode():
            _score_whole(policy, p_ids, c_ids, results, batch_size)
        return results
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, ids in enumerate(p_ids):
        if c_ids[i]:
            groups.setdefault(tuple(ids), []).append(i)
    # Similar prompt lengths share a prefill, so little compute goes to padding.
    ordered = sorted(groups.items(), key=lambda kv: len(kv[0]))
    with eval_mode(policy.model), torch.inference_mode():
        chunk: list[tuple[tuple[int, ...], list[int]]] = []
        rows = 0
        for item in ordered:
            if chunk and rows + len(item[1]) > batch_size:
                _score_chunk(policy, chunk, p_ids, c_ids, results, batch_size)
                chunk, rows = [], 0
            chunk.append(item)
            rows += len(item[1])
        if chunk:
            _score_chunk(policy, chunk, p_ids, c_ids, results, batch_size)
    return results


def _score_whole(
    policy: Policy,
    p_ids: list[list[int]],
    c_ids: list[list[int]],
    results: list[float],
    batch_size: int,
    only: list[int] | None = None,
) -> None:
    """Each (prompt, continuation) as one sequence, length-sorted batches."""
    todo = only if only is not None else list(range(len(p_ids)))
    order = sorted((i for i in todo if c_ids[i]), key=lambda i: len(p_ids[i]) + len(c_ids[i]))
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        input_ids, mask = left_pad([p_ids[i] + c_ids[i] for i in batch], pad_token_id(policy), policy.device)
        max_c = max(len(c_ids[i]) for i in batch)
        # Left padding right-aligns every row, so all continuations sit in the last max_c
        # positions and are predicted by the max_c positions just before them.
        out = policy.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=position_ids(mask),
            use_cache=False,
            logits_to_keep=max_c + 1,
        )
        logprobs = torch.log_softmax(out.logits[:, :-1, :].float(), dim=-1)  # [B, max_c, V]
        picked = logprobs.gather(-1, input_ids[:, -max_c:].unsqueeze(-1)).squeeze(-1)  # [B, max_c]
        for j, i in enumerate(batch):
            results[i] = float(picked[j, max_c - len(c_ids[i]) :].sum())


def _score_chunk(
    policy: Policy,
    chunk: list[tuple[tuple[int, ...], list[int]]],
    p_ids: list[list[int]],
    c_ids: list[list[int]],
    results: list[float],
    batch_size: int,
) -> None:
    """Prefill the chunk's distinct prompts once, then score their continuations from the cache."""
    model, device = policy.model, policy.device
    prefix, last, mask = prefill(policy, [list(ids) for ids, _ in chunk])
    cache_kw = cache_kwarg(model)
    kv = [
        (layer.keys, layer.values)
        for layer in prefix.layers
        if type(layer) is DynamicLayer and layer.keys is not None and layer.values is not None
    ]
    if len(kv) != len(prefix.layers):  # sliding-window or linear-attention layers: no plain copy
        _score_whole(policy, p_ids, c_ids, results, batch_size, [i for _, members in chunk for i in members])
        return
    first = torch.log_softmax(last, dim=-1)  # [P, V]: each first token
    next_pos = mask.sum(-1)  # position of each prompt's first continuation token
    rows = [(slot, i) for slot, (_, members) in enumerate(chunk) for i in members]
    for start in range(0, len(rows), batch_size):
        part = rows[start : start + batch_size]
        slots = torch.tensor([slot for slot, _ in part], dtype=torch.long, device=device)
        conts = [c_ids[i] for _, i in part]
        width = max(len(c) for c in conts)
        ids = torch.full((len(part), width), pad_token_id(policy), dtype=torch.long)
        c_mask = torch.zeros((len(part), width), dtype=torch.long)
        for r, c in enumerate(conts):  # right-padded: pads come after, so no real token sees them
            ids[r, : len(c)] = torch.tensor(c, dtype=torch.long)
            c_mask[r, : len(c)] = 1
        ids, c_mask = ids.to(device), c_mask.to(device)
        cache = DynamicCache(config=base_config(model))
        for index, (keys, values) in enumerate(kv):
            cache.update(keys[slots], values[slots], index)
        out = model(
            input_ids=ids,
            attention_mask=torch.cat([mask[slots], c_mask], dim=-1),
            position_ids=next_pos[slots].unsqueeze(-1) + torch.arange(width, device=device),
            use_cache=True,
            **{cache_kw: cache},
        )
        # Token t of a continuation is predicted by the prompt's last position (t = 0) or by
        # the continuation's position t - 1.
        later = torch.log_softmax(out.logits[:, :-1, :].float(), dim=-1)
        head = first[slots].gather(-1, ids[:, :1]).squeeze(-1)
        tail = later.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1) * c_mask[:, 1:]
        totals = (head + tail.sum(-1)).tolist()
        for (_, i), total in zip(part, totals, strict=True):
            results[i] = float(total)


def next_token_logprobs(
    policy: Policy, prompts: list[str], candidates: list[str], *, batch_size: int = 16
) -> torch.Tensor:
    """[len(prompts), len(candidates)] log-probs of each candidate's first token as the next token.

    The judge uses this for P(A)/P(B) or P(Yes): give candidates as the model would write them
    after the prompt (e.g. ``"A"`` or ``" A"`` matters for BPE vocabularies).
    """
    cand_ids = encode_continuations(policy, candidates)
    for text, ids in zip(candidates, cand_ids, strict=True):
        if not ids:
            raise ValueError(f"candidate {text!r} encodes to no tokens")
    first = torch.tensor([ids[0] for ids in cand_ids], dtype=torch.long, device=policy.device)
    if not prompts:
        return torch.zeros((0, len(candidates)))
    p_ids = encode_prompts(policy, prompts)
    # Batch similar lengths together so little compute goes to padding; rows return in input order.
    order = sorted(range(len(p_ids)), key=lambda i: len(p_ids[i]))
    out_rows: list[torch.Tensor] = []
    with eval_mode(policy.model), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = [p_ids[i] for i in order[start : start + batch_size]]
            input_ids, mask = left_pad(batch, pad_token_id(policy), policy.device)
            out = policy.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids(mask),
                use_cache=False,
                logits_to_keep=1,
            )
            logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
            out_rows.append(logprobs[:, first].cpu())
    by_length = torch.cat(out_rows, dim=0)
    result = torch.empty_like(by_length)
    result[torch.tensor(order)] = by_length
    return result
