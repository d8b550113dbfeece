"""PPO with step-level rewards for a causal LM (the user's KL-regularised PPO trainer).

TRL 1.16 has no PPO trainer (and its old one took one scalar per sequence), so it
lives here. One ``train()`` call is one PPO iteration on a batch of rollouts:

1. Collate: prompt (left-padded) + the response as its steps' tokens (right-padded);
   each step's end position follows from the step lengths.
2. One no-grad pass: old log-probs and values (policy), reference log-probs (the policy
   as it was when the trainer was made, i.e. the previous iteration's model: see
   presrm.train.ppo_reference).
3. Token rewards = each step's (optionally batch-normalised) reward on its last
   token − kl_coef·KL per token; masked GAE; whitened advantages. A step without a
   reward (None: not judged, or not the last step under outcome rewards) adds nothing.
4. ``ppo_epochs`` passes over shuffled minibatches: clipped policy loss + vf_coef ×
   clipped value loss, one optimizer update per minibatch.

Log-probs come from the LM head applied ``logprob_chunk`` response tokens at a time
(presrm.train.logprobs), so no whole-minibatch full-vocabulary float32 logits exist.
The value head can be handed in (the previous iteration's) and is kept by the trainer.

The same code runs on one CPU process and under ``accelerate launch`` data parallel:
pass an ``accelerate.Accelerator``; every process gets the same rollout list and
trains on its share (``rollouts[rank::world]``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from presrm.config import PPOConfig
from presrm.train.examples import StepRollout
from presrm.train.ppo_batch import Batch, collate
from presrm.train.ppo_math import (
    compute_gae,
    kl_penalty,
    masked_mean,
    masked_whiten,
    place_step_rewards,
    policy_loss,
    token_rewards,
    value_loss,
)
from presrm.train.ppo_reference import Reference
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
        value_head: ValueHead | None = None,
    ) -> None:
        self.config = config or PPOConfig()
        self.seed = seed
        self.accelerator = accelerator
        self.tokenizer = tokenizer
        self.pad_id = self._pad_id(tokenizer)
        self.device = accelerator.device if accelerator is not None else next(model.parameters()).device
        self._calls = 0

        # Reference = the policy as it is now (an explicit frozen model wins).
        self.reference = Reference(model, ref_model, self.device)
        self.ref_model = self.reference.model

        # A given value head (the previous iteration's) goes on learning; else a new one.
        wrapped = PolicyWithValue(model, value_head=value_head, seed=self.seed)
        wrapped.to(self.device)
        wrapped.train(model.training)  # a new module is in train mode; train() restores this one
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

    def release(self) -> None:
        """Free the reference (a LoRA policy loses its reference adapter copy); call when done."""
        self.reference.release()

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

    def _forward(self, mb: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs and entropies of the response tokens and the values of the states that
        choose them, each ``[B, T]``."""
        logprob, entropy, values = self.model(
            mb.input_ids,
            mb.attention_mask,
            mb.position_ids,
            mb.response_ids,
            mb.response_mask,
            self.config.logprob_chunk,
        )
        return logprob, entropy, values.float()

    def _normalized_rewards(self, raw: list[list[float | None]]) -> list[list[float]]:
        """Step rewards standardised over every rewarded step in the (global) batch; a step
        without a reward (None) gets 0 after normalisation, not a share of the batch mean."""
        if self.config.reward_norm == "none":
            return [[0.0 if r is None else r for r in row] for row in raw]
        flat = torch.tensor(
            [r for row in raw for r in row if r is not None], dtype=torch.float64, device=self.device
        ).reshape(-1)
        stats = self._reduce(
            torch.stack([flat.sum(), flat.square().sum(), flat.new_tensor(flat.numel())]), "sum"
        )
        total, sq, n = (float(v) for v in stats)
        if n == 0:  # nothing rewarded anywhere: only the KL term will act
            return [[0.0 for _ in row] for row in raw]
        mean = total / n
        std = math.sqrt(max(sq / n - mean * mean, 0.0))
        # All rewards equal: nothing to rank, so only centre (do not blow up rounding noise).
        scale = 1.0 / std if std > 1e-6 else 0.0
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
            logprob, _, values = self._forward(mb)
            pad = t_len - mb.response_ids.shape[1]
            old_lp.append(nn.functional.pad(logprob, (0, pad)))
            old_v.append(nn.functional.pad(values, (0, pad)))
            ref_lp.append(nn.functional.pad(self.reference.logprobs(mb, cfg.logprob_chunk), (0, pad)))
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
        # reference must see the same network as the rollout pass.
        model.eval()
        history: list[dict[str, float]] = []
        try:
            self._prepare(batch)
            with self._checkpointing():
                for idx in self._minibatches(batch.size):
                    history.append(self._update(batch.rows(idx)))
        finally:
            model.train(was_training)
            self._calls += 1
        return history

    @contextmanager
    def _checkpointing(self) -> Iterator[None]:
        """Activation checkpointing for the updates. transformers only checkpoints in train mode,
        so the model is put in train mode with its dropout modules kept in eval mode."""
        if not self.config.gradient_checkpointing:
            yield
            return
        lm: Any = self.unwrapped.policy
        lm = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
        lm.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        self.model.train()
        for module in self.model.modules():
            if isinstance(module, nn.Dropout):
                module.eval()
        try:
            yield
        finally:
            lm.activation_checkpointing_disable()
            self.model.eval()

    def _update(self, mb: Batch) -> dict[str, float]:
        cfg = self.config
        mask, ex = mb.response_mask, mb.extra
        logprob, token_entropy, values = self._forward(mb)
        pg_loss, clipfrac, approx_kl = policy_loss(
            logprob, ex["old_logprob"], ex["advantages"], mask, cfg.clip
        )
        vf_loss, vf_clipfrac = value_loss(values, ex["old_values"], ex["returns"], mask, cfg.vf_clip)
        loss = pg_loss + cfg.vf_coef * vf_loss
        entropy = masked_mean(token_entropy if cfg.ent_coef > 0 else token_entropy.detach(), mask)
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
