"""A loaded model made ready for a run: trainable as the config says, with the run's step format."""

from __future__ import annotations

from presrm.config import RunConfig
from presrm.model.adapters import prepare_for_training
from presrm.model.policy import Policy
from presrm.steps import resolve_step_format


def prepare_policy(policy: Policy, cfg: RunConfig) -> Policy:
    """Make ``policy`` trainable the way the config says (a new adapter: its rank, scale and seed)
    and give it the run's step format (``step_format``; auto = multi-line steps for chat models)."""
    t = cfg.train
    policy = prepare_for_training(policy, t.finetune, seed=cfg.seed, lora_r=t.lora_r, lora_alpha=t.lora_alpha)
    policy.step_format = resolve_step_format(cfg.step_format, policy.chat)
    return policy
