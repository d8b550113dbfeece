"""One PPO training stage of the loop: M_{k-1} (and its value head) → M_k (and its value head)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from presrm.config import PPOConfig
from presrm.model.policy import Policy
from presrm.train.examples import StepRollout
from presrm.train.ppo import StepPPOTrainer
from presrm.train.value_head import ValueHead


def train_ppo(
    policy: Policy,
    rollouts: list[StepRollout],
    config: PPOConfig,
    *,
    seed: int,
    value_head: ValueHead | None,
    log: Callable[[int, dict[str, float]], None],
    accelerator: Any | None = None,
) -> tuple[list[dict[str, float]], ValueHead]:
    """Train ``policy.model`` in place on ``rollouts``; returns the per-update metrics and the
    value head (``value_head`` trained on, or a new one), which the caller saves with M_k.

    The reference is the policy as it is on entry; a LoRA policy's copy of its adapter is
    deleted again before this returns, so the checkpoint holds only the trained adapter.
    """
    trainer = StepPPOTrainer(
        policy.model,
        policy.tokenizer,
        config,
        accelerator=accelerator,
        seed=seed,
        value_head=value_head,
    )
    try:
        records = trainer.train(rollouts)
    finally:
        trainer.release()
    for step, metrics in enumerate(records):
        log(step, metrics)
    return records, trainer.value_head
