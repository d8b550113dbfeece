"""PPO with step-level rewards for a causal LM (the user's KL-regularised PPO trainer).

TRL 1.16 has no PPO trainer (and its old one took one scalar per sequence), so it
lives here. One ``train()`` call is one PPO iteration on a batch of rollouts:

1. Collate: prompt (left-padded) + the response as its steps' tokens (right-padded);
   each step's end position follows from the step lengths.
2. One no-grad pass: old log-probs and values (policy), reference log-probs (the
   PEFT base with the adapter disabled, a given frozen model, or a frozen copy).
3. Token rewards = each step's (optionally batch-normalised) reward on its last
   token − kl_coef·KL per token; masked GAE; whitened advantages.
4. ``ppo_epochs`` passes over shuffled minibatches: clipped policy loss + vf_coef ×
   clipped value loss, one optimizer update per minibatch.

The same code runs on one CPU process and under ``accelerate launch`` data parallel:
pass an ``accelerate.Accelerator``; every process gets the same rollout list and
trains on its share (``rollouts[rank::world]``).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from presrm.config import PPOConfig
from presrm.model.policy import is_peft
from presrm.train.examples import StepRollout
from presrm.train.ppo_batch import Batch, collate, response_logprobs
from presrm.train.ppo_math import (
    compute_gae,
    entropy_from_logits,
    kl_penalty,
    masked_mean,
    masked_whiten,
    place_step_rewards,
    policy_loss,
    token_rewards,
    value_loss,
)
from presrm.train.value_head import PolicyWithValue, ValueHead

METRIC_KEYS: tuple[str, ...] = (
    "policy_loss",
    "value_loss",
    "kl",
    "reward_mean",
    "clipfrac",
    "vf_clipfrac",
    "approx_kl",
    "entropy",
    "grad_norm",
    "tokens",
)


class StepPPOTrainer:
    """PPO on step-level rewards. Keeps its optimizer (and value head) across ``train()`` calls."""

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        config: PPOConfig | None = None,
        ref_model: nn.Module | None = None,
        accelerator: Any | None = None,
        *,
        seed: int = 0,
    ) -> None:
        self.config = config or PPOConfig()
        self.seed = seed
        self.accelerator = accelerator
        self.tokenizer = tokenizer
        self.pad_id = self._pad_id(tokenizer)
        self.device = accelerator.device if accelerator is not None else next(model.parameters()).device
        self._calls = 0

        # Reference: an explicit frozen model wins; a LoRA policy's own base (adapter
        # disabled) is free; otherwise freeze a copy of the policy as it is now.
        self.use_adapter_as_ref = ref_model is None and is_peft(model)
        if ref_model is None and not self.use_adapter_as_ref:
            ref_model = copy.deepcopy(model)
        if ref_model is not None:
            ref_model.eval().requires_grad_(False)
            ref_model.to(self.device)
        self.ref_model = ref_model

        wrapped = PolicyWithValue(model, seed=self.seed)
        wrapped.to(self.device)
        value_params = list(wrapped.value_head.parameters())
        value_ids = {id(p) for p in value_params}
        policy_params = [p for p in wrapped.parameters() if p.requires_grad and id(p) not in value_ids]
        if not policy_params:
            raise ValueError("the policy has no trainable parameters")
        cfg = self.config
        optimizer = torch.optim.AdamW(
            [
                {"params": policy_params, "lr": cfg.lr},
                {"params": value_params, "lr": cfg.value_lr if cfg.value_lr is not None else cfg.lr},
            ],
            weight_decay=cfg.weight_decay,
        )
        if accelerator is not None:
            wrapped, optimizer = accelerator.prepare(wrapped, optimizer)
        self.model = wrapped  # possibly DDP-wrapped: train through this one
        self.optimizer = optimizer
        self._trainable = policy_params + value_params

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _pad_id(tokenizer: Any) -> int:
        for name in ("pad_token_id", "eos_token_id"):
            tok = getattr(tokenizer, name, None)
            if isinstance(tok, int):
                return tok
        return 0

    @property
    def unwrapped(self) -> PolicyWithValue:
        if self.accelerator is not None:
            return self.accelerator.unwrap_model(self.model)
        return self.model

    @property
    def value_head(self) -> ValueHead:
        return self.unwrapped.value_head

    @property
    def rank(self) -> int:
        return int(self.accelerator.process_index) if self.accelerator is not None else 0

    @property
    def world(self) -> int:
        return int(self.accelerator.num_processes) if self.accelerator is not None else 1

    def _reduce(self, x: torch.Tensor, how: str) -> torch.Tensor:
        if self.accelerator is None or self.world == 1:
            return x
        return self.accelerator.reduce(x, reduction=how)

    def _forward(self, mb: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits predicting the response tokens ``[B, T, V]`` and the values at the states
        that choose them ``[B, T]`` (the state before token t sits at column P + t − 1)."""
        t_len = mb.response_ids.shape[1]
        logits, values = self.model(
            mb.input_ids, mb.attention_mask, mb.position_ids, logits_to_keep=t_len + 1
        )
        p = mb.prompt_len
        return logits[:, :t_len], values[:, p - 1 : p - 1 + t_len].float()

    def _ref_logprobs(self, mb: Batch) -> torch.Tensor:
        t_len = mb.response_ids.shape[1]
        kwargs = {
            "input_ids": mb.input_ids,
            "attention_mask": mb.attention_mask,
            "position_ids": mb.position_ids,
            "use_cache": False,
            "logits_to_keep": t_len + 1,
        }
        if self.use_adapter_as_ref:
            policy = self.unwrapped.policy
            with policy.disable_adapter():  # type: ignore[operator]
                logits = policy(**kwargs).logits
        else:
            assert self.ref_model is not None
            logits = self.ref_model(**kwargs).logits
        return response_logprobs(logits[:, :t_len], mb.response_ids)

    def _normalized_rewards(self, raw: list[list[float | None]]) -> list[list[float]]:
        """Step rewards standardised over every rewarded step in the (global) batch; a step
        without a reward (None) gets 0 after normalisation, not a share of the batch mean."""
        if self.config.reward_norm == "none":
            return [[0.0 if r is None else r for r in row] for row in raw]
        flat = torch.tensor(
            [r for row in raw for r in row if r is not None], dtype=torch.float64, device=self.device
        )
        stats = self._reduce(
            torch.stack([flat.sum(), flat.square().sum(), flat.new_tensor(flat.numel())]), "sum"
        )
        total, sq, n = (float(v) for v in stats)
        mean = total / n
        std = math.sqrt(max(sq / n - mean * mean, 0.0))
        # All rewards equal: nothing to rank, so only centre (do not blow up rounding noise).
        scale = 1.0 / std if std > 1e-6 else 0.0
        mean = mean if n else 0.0
        return [[0.0 if r is None else (r - mean) * scale if scale else r - mean for r in row] for row in raw]

    @torch.no_grad()
    def _prepare(self, batch: Batch) -> None:
        """Old log-probs, values, reference log-probs, token rewards, advantages, returns."""
        cfg = self.config
        old_lp, old_v, ref_lp = [], [], []
        t_len = batch.response_ids.shape[1]
        for start in range(0, batch.size, cfg.minibatch_size):
            idx = torch.arange(start, min(start + cfg.minibatch_size, batch.size), device=self.device)
            mb = batch.rows(idx)
            logits, values = self._forward(mb)
            pad = t_len - mb.response_ids.shape[1]
            old_lp.append(nn.functional.pad(response_logprobs(logits, mb.response_ids), (0, pad)))
            old_v.append(nn.functional.pad(values, (0, pad)))
            ref_lp.append(nn.functional.pad(self._ref_logprobs(mb), (0, pad)))
        mask = batch.response_mask
        old_logprob, old_values, ref_logprob = torch.cat(old_lp), torch.cat(old_v), torch.cat(ref_lp)
        scores = place_step_rewards(batch.step_ends, self._normalized_rewards(batch.raw_rewards), t_len)
        rewards, _ = token_rewards(
            scores.to(self.device), old_logprob, ref_logprob, mask, cfg.kl_coef, cfg.kl_kind
        )
        advantages, returns = compute_gae(rewards, old_values, mask, cfg.gamma, cfg.lam)
        if cfg.whiten_advantages and mask.sum() >= 2:
            advantages = masked_whiten(advantages, mask)
        batch.extra.update(
            old_logprob=old_logprob,
            old_values=old_values,
            ref_logprob=ref_logprob,
            advantages=advantages,
            returns=returns,
        )

    def _minibatches(self, n: int) -> Iterator[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed + 100_003 * self._calls + 7919 * self.rank)
        for _ in range(self.config.ppo_epochs):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, self.config.minibatch_size):
                yield order[start : start + self.config.minibatch_size].to(self.device)

    def _shard(self, rollouts: list[StepRollout]) -> list[StepRollout]:
        """This process's share. The list is first padded (by repeating from its start) to a
        multiple of the world size, so every process makes the same number of updates
        (DDP hangs otherwise)."""
        if self.world == 1:
            return rollouts
        short = (-len(rollouts)) % self.world
        padded = rollouts + [rollouts[i % len(rollouts)] for i in range(short)]
        return padded[self.rank :: self.world]

    # ------------------------------------------------------------------ training
    def train(self, rollouts: list[StepRollout]) -> list[dict[str, float]]:
        """One PPO iteration on ``rollouts``; returns one metrics dict per optimizer update
        (averaged over processes; ``tokens`` summed)."""
        if not rollouts:
            return []
        local = self._shard(rollouts)
        batch = collate(local, self.pad_id, self.device)
        model = self.model
        was_training = model.training
        # Dropout off throughout: the first minibatch's ratio must be exactly 1, and the
        # reference (adapter disabled) must see the same network as the rollout pass.
        model.eval()
        history: list[dict[str, float]] = []
        try:
            self._prepare(batch)
            for idx in self._minibatches(batch.size):
                history.append(self._update(batch.rows(idx)))
        finally:
            model.train(was_training)
            self._calls += 1
        return history

    def _update(self, mb: Batch) -> dict[str, float]:
        cfg = self.config
        mask, ex = mb.response_mask, mb.extra
        logits, values = self._forward(mb)
        logprob = response_logprobs(logits, mb.response_ids)
        pg_loss, clipfrac, approx_kl = policy_loss(
            logprob, ex["old_logprob"], ex["advantages"], mask, cfg.clip
        )
        vf_loss, vf_clipfrac = value_loss(values, ex["old_values"], ex["returns"], mask, cfg.vf_clip)
        loss = pg_loss + cfg.vf_coef * vf_loss
        ent_ctx = contextlib.nullcontext() if cfg.ent_coef > 0 else torch.no_grad()
        with ent_ctx:
            entropy = masked_mean(entropy_from_logits(logits.float()), mask)
        if cfg.ent_coef > 0:
            loss = loss - cfg.ent_coef * entropy

        self.optimizer.zero_grad(set_to_none=True)
        if self.accelerator is not None:
            self.accelerator.backward(loss)
            grad_norm = self.accelerator.clip_grad_norm_(self._trainable, cfg.max_grad_norm)
        else:
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self._trainable, cfg.max_grad_norm)
        self.optimizer.step()

        with torch.no_grad():
            kl = masked_mean(kl_penalty(logprob.detach(), ex["ref_logprob"], cfg.kl_kind), mask)
            given = [r for row in mb.raw_rewards for r in row if r is not None]
            reward_mean = sum(given) / max(1, len(given))
            means = torch.stack(
                [
                    pg_loss.detach(),
                    vf_loss.detach(),
                    kl,
                    torch.tensor(reward_mean, device=self.device),
                    clipfrac,
                    vf_clipfrac,
                    approx_kl,
                    entropy.detach(),
                    torch.as_tensor(grad_norm, device=self.device).float(),
                ]
            ).float()
            means = self._reduce(means, "mean")
            tokens = self._reduce(mask.sum().detach(), "sum")
        metrics = dict(zip(METRIC_KEYS[:-1], (float(v) for v in means), strict=True))
        metrics["tokens"] = float(tokens)
        return metrics

    # ------------------------------------------------------------------ persistence
