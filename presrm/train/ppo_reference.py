"""PPO's KL reference: the policy as it was when the trainer was made.

In the loop that is the previous iteration's model M_{k-1}, the same reference step-DPO uses
(and the usual one in iterative RLHF). The base model with a LoRA adapter switched off would be
the model *before* the warm-up, which pulls every iteration back towards a model that cannot
write the judge format.

- an explicit frozen ``ref_model``: used as given;
- a LoRA policy: its active adapter is copied into a frozen adapter (:data:`REF_ADAPTER`) on
  the same base, so the reference costs the adapter's size, not a second model; the reference
  pass switches to it and back. :meth:`Reference.release` deletes it (a checkpoint must not
  carry it);
- any other policy: a frozen deep copy.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch
from torch import nn

from presrm.model.policy import is_peft
from presrm.train.logprobs import lm_response_stats
from presrm.train.ppo_batch import Batch

REF_ADAPTER = "ppo_ref"


class Reference:
    """Computes reference log-probs of a batch's response tokens."""

    def __init__(self, policy: nn.Module, ref_model: nn.Module | None, device: torch.device) -> None:
        self.policy = policy
        self.adapter: str | None = None
        self.model: nn.Module | None = ref_model
        if ref_model is None and is_peft(policy):
            self.adapter = self._snapshot_adapter(policy)
        elif ref_model is None:
            self.model = copy.deepcopy(policy)
        if self.model is not None:
            self.model.eval().requires_grad_(False)
            self.model.to(device)

    @staticmethod
    def _snapshot_adapter(model: Any) -> str:
        from peft import get_peft_model_state_dict, set_peft_model_state_dict

        if REF_ADAPTER in model.peft_config:
            raise ValueError(f"the model already has an adapter named {REF_ADAPTER!r}; presrm needs it free")
        active = model.active_adapter
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        config = copy.deepcopy(model.peft_config[active])
        config.inference_mode = True
        with warnings.catch_warnings():  # peft asks transformers' deprecated is_gradient_checkpointing
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            model.add_adapter(REF_ADAPTER, config)
        state = get_peft_model_state_dict(model, adapter_name=active)
        set_peft_model_state_dict(model, state, adapter_name=REF_ADAPTER)
        model.set_adapter(active)
        _restore_trainable(model, trainable)
        return REF_ADAPTER

    @torch.no_grad()
    def logprobs(self, mb: Batch, chunk: int) -> torch.Tensor:
        args = (mb.input_ids, mb.attention_mask, mb.position_ids, mb.response_ids, mb.response_mask, chunk)
        if self.model is not None:
            return lm_response_stats(self.model, *args)[0]
        model: Any = self.policy
        active = model.active_adapter
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        model.set_adapter(self.adapter, inference_mode=True)
        try:
            return lm_response_stats(model, *args)[0]
        finally:
            model.set_adapter(active)
            _restore_trainable(model, trainable)

    def release(self) -> None:
        """Drop the adapter copy (idempotent); the policy is left with the adapters it came with."""
        if self.adapter is not None and REF_ADAPTER in getattr(self.policy, "peft_config", {}):
            model: Any = self.policy
            model.delete_adapter(REF_ADAPTER)
        self.adapter = None


def _restore_trainable(model: nn.Module, names: set[str]) -> None:
    """Switching adapters flips requires_grad; put back exactly the parameters the optimizer trains."""
    for name, param in model.named_parameters():
        param.requires_grad_(name in names)
