"""PPO math as small pure functions on masked tensors.

Shapes: ``[B, T]`` over response tokens unless stated; ``mask`` is 1 for real
response tokens and 0 for padding. The semantics follow verl's
``trainer/ppo/core_algos.py`` (GAE, KL estimators, clipped losses) so numbers are
comparable with a well-known implementation; nothing here touches a model.
"""

from __future__ import annotations

from typing import Literal

import torch

KLKind = Literal["k1", "k2", "k3", "abs"]
KL_KINDS: tuple[str, ...] = ("k1", "k2", "k3", "abs")


def masked_sum(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Sum of ``x`` where ``mask`` is set. ``torch.where`` (not ``x * mask``) so a NaN or inf
    at a padded position cannot leak into the sum."""
    kept = torch.where(mask.bool(), x, torch.zeros_like(x))
    return kept.sum() if dim is None else kept.sum(dim=dim)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is set (0 where nothing is set)."""
    count = mask.to(x.dtype).sum() if dim is None else mask.to(x.dtype).sum(dim=dim)
    return masked_sum(x, mask, dim) / count.clamp(min=1.0)


def masked_var(x: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked entries of ``x`` (all dims together).

    Unbiased (Bessel-corrected) by default like verl; it then needs at least two
    entries, because a variance from one sample is undefined rather than 0.
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    if unbiased:
        n = int(mask.sum().item())
        if n < 2:
            raise ValueError(f"unbiased masked variance needs at least 2 masked entries, got {n}")
        var = var * (n / (n - 1))
    return var


def masked_whiten(
    x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8
) -> torch.Tensor:
    """Scale masked entries of ``x`` to unit variance (and zero mean if ``shift_mean``).

    Statistics come from masked entries only; masked positions come back as 0 so
    padding never carries a (meaningless) whitened value downstream.
    """
    mean = masked_mean(x, mask)
    var = masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def kl_penalty(logprob: torch.Tensor, ref_logprob: torch.Tensor, kind: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from sampled tokens' log-probs.

    k1: log r (unbiased, can be negative); k2: ½(log r)²; k3: r⁻¹ − 1 + log r with
    r = π/π_ref (Schulman's low-variance estimator, always ≥ 0); abs: |log r|.
    """
    log_ratio = logprob - ref_logprob
    if kind == "k1":
        return log_ratio
    if kind == "k2":
        return 0.5 * log_ratio.square()
    if kind == "k3":
        # Clamp like verl: exp of a large negative log-ratio would overflow.
        neg = (-log_ratio).clamp(-20.0, 20.0)
        return (torch.exp(neg) - neg - 1.0).clamp(-10.0, 10.0)
    if kind == "abs":
        return log_ratio.abs()
    raise ValueError(f"unknown KL estimator {kind!r}; expected one of {KL_KINDS}")


def place_step_rewards(
    step_end_positions: list[list[int]], step_rewards: list[list[float]], response_len: int
) -> torch.Tensor:
    """Dense ``[B, response_len]`` rewards: each step's reward sits on that step's last token.

    Positions are 0-based indices into the response. Two rewards on one position add.
    """
    if len(step_end_positions) != len(step_rewards):
        raise ValueError("step_end_positions and step_rewards differ in batch size")
    out = torch.zeros(len(step_rewards), response_len, dtype=torch.float32)
    for row, (ends, rewards) in enumerate(zip(step_end_positions, step_rewards, strict=True)):
        if len(ends) != len(rewards):
            raise ValueError(f"row {row}: {len(ends)} step ends but {len(rewards)} step rewards")
        for end, reward in zip(ends, rewards, strict=True):
            if not 0 <= end < response_len:
                raise ValueError(f"row {row}: step end {end} outside response of length {response_len}")
            out[row, end] += float(reward)
    return out


def token_rewards(
    score_rewards: torch.Tensor,
    logprob: torch.Tensor,
    ref_logprob: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    kind: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards = placed step rewards − kl_coef·KL; returns ``(rewards, kl)``.

    Both are 0 at masked positions. The KL term is per token (as in verl's
    ``apply_kl_penalty``), so a step that drifts far from the reference pays for it
    on the tokens where it drifts.
    """
    keep = mask.bool()
    kl = torch.where(keep, kl_penalty(logprob, ref_logprob, kind), torch.zeros_like(logprob))
    rewards = torch.where(keep, score_rewards - kl_coef * kl, torch.zeros_like(kl))
    return rewards, kl


def compute_gae(
    token_rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over masked sequences; returns ``(advantages, returns)``.

    δ_t = r_t + γ·V_{next} − V_t and A_t = δ_t + γλ·A_{next}, where "next" is the next
    *valid* token (masked tokens are skipped, as in verl) and is 0 after the last valid
    token (the episode ends there). Returns = A + V. Not whitened; both are 0 where masked.
    """
    m = mask.to(values.dtype)
    next_value = torch.zeros_like(values[:, 0])
    last_gae = torch.zeros_like(values[:, 0])
    advantages_rev = []
    for t in reversed(range(values.shape[1])):
        delta = token_rewards[:, t] + gamma * next_value - values[:, t]
        gae = delta + gamma * lam * last_gae
        # A masked token leaves the carried value and advantage untouched.
        next_value = m[:, t] * values[:, t] + (1 - m[:, t]) * next_value
        last_gae = m[:, t] * gae + (1 - m[:, t]) * last_gae
        advantages_rev.append(last_gae)
    advantages = torch.stack(advantages_rev[::-1], dim=1)
    returns = advantages + values
    zero = torch.zeros_like(values)
    return torch.where(mask.bool(), advantages, zero), torch.where(mask.bool(), returns, zero)


def policy_loss(
    logprob: torch.Tensor,
    old_logprob: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO clipped surrogate, token-mean over the mask; returns ``(loss, clipfrac, approx_kl)``.

    loss = mean(max(−A·r, −A·clip(r, 1−ε, 1+ε))) with r = exp(logprob − old_logprob).
    ``clipfrac`` is the share of tokens where the clipped term is the active one;
    ``approx_kl`` = mean(old_logprob − logprob) (verl's ``ppo_kl``).
    """
    log_ratio = (logprob - old_logprob).clamp(-20.0, 20.0)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    clipfrac = masked_mean(torch.gt(clipped, unclipped).to(logprob.dtype), mask)
    approx_kl = masked_mean(-log_ratio, mask)
    return loss, clipfrac.detach(), approx_kl.detach()


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss ½·mean(max((V−R)², (V_clip−R)²)); returns ``(loss, clipfrac)``.

    V_clip keeps the new value within ``clip`` of the value seen at rollout time, so
    the critic cannot jump far on one batch.
    """
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    loss_unclipped = (values - returns).square()
    loss_clipped = (clipped_values - returns).square()
    loss = 0.5 * masked_mean(torch.maximum(loss_unclipped, loss_clipped), mask)
    clipfrac = masked_mean(torch.gt(loss_clipped, loss_unclipped).to(values.dtype), mask)
    return loss, clipfrac.detach()


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution over the last dim: logsumexp(z) − Σ softmax(z)·z."""
    probs = torch.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)
