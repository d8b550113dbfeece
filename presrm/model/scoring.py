"""Log-probabilities of given continuations and of single next tokens (no sampling)."""

from __future__ import annotations

import torch

from presrm.model.encoding import encode_continuations, encode_prompts, left_pad, position_ids
from presrm.model.generation import eval_mode, pad_token_id
from presrm.model.policy import Policy


def sequence_logprobs(
    policy: Policy, prompts: list[str], continuations: list[str], *, batch_size: int = 16
) -> list[float]:
    """Sum of log P(continuation tokens | prompt) for each pair (0.0 for an empty continuation)."""
    if len(prompts) != len(continuations):
        raise ValueError("prompts and continuations must have the same length")
    if not prompts:
        return []
    p_ids = encode_prompts(policy, prompts)
    c_ids = encode_continuations(policy, continuations)
    results = [0.0] * len(prompts)
    # Batch similar lengths together so little compute goes to padding.
    order = sorted(range(len(prompts)), key=lambda i: len(p_ids[i]) + len(c_ids[i]))
    order = [i for i in order if c_ids[i]]
    with eval_mode(policy.model), torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            rows = [p_ids[i] + c_ids[i] for i in batch]
            input_ids, mask = left_pad(rows, pad_token_id(policy), policy.device)
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
            targets = input_ids[:, -max_c:]
            picked = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # [B, max_c]
            for j, i in enumerate(batch):
                c = len(c_ids[i])
                results[i] = float(picked[j, max_c - c :].sum())
    return results


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
    out_rows: list[torch.Tensor] = []
    with eval_mode(policy.model), torch.inference_mode():
        for start in range(0, len(p_ids), batch_size):
            input_ids, mask = left_pad(p_ids[start : start + batch_size], pad_token_id(policy), policy.device)
            out = policy.model(
                input_ids=input_ids,
                attention_mask=mask,
                position_ids=position_ids(mask),
                use_cache=False,
                logits_to_keep=1,
            )
            logprobs = torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)
            out_rows.append(logprobs[:, first].cpu())
    return torch.cat(out_rows, dim=0)
