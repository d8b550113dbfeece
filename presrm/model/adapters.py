"""Training modes: a LoRA adapter or full fine-tuning, chosen by size when ``auto``."""

from __future__ import annotations

from typing import Any

import torch

from presrm.errors import ModelError
from presrm.model.policy import Policy

FULL_FINETUNE_MAX_PARAMS = 5_000_000  # below this, LoRA adapters are as big as the model


def add_lora(
    policy: Policy,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: str | list[str] = "all-linear",
    seed: int | None = None,
) -> Policy:
    """Wrap the model in a trainable LoRA adapter (``all-linear`` never includes lm_head).

    The adapter's random A matrices come from ``seed`` (default: the policy's seed), so a run
    is reproducible from its config whatever else used the global RNG before.
    """
    from peft import LoraConfig, get_peft_model

    if policy.is_lora:
        raise ModelError("model already has a LoRA adapter (load its checkpoint to continue training it)")
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(policy.seed if seed is None else seed)
        model = get_peft_model(policy.model, config)
    return _replace_model(policy, model)


def use_full_finetune(policy: Policy) -> Policy:
    """Every parameter trainable (the right choice for tiny models)."""
    if policy.is_lora:
        raise ModelError("model has a LoRA adapter; full fine-tuning needs the plain model")
    for p in policy.model.parameters():
        p.requires_grad_(True)
    return policy


def prepare_for_training(
    policy: Policy, mode: str = "auto", *, seed: int | None = None, lora_r: int = 8, lora_alpha: int = 16
) -> Policy:
    """``auto``: full fine-tuning below 5M parameters, LoRA otherwise; or ``lora`` / ``full``.

    A new LoRA adapter has rank ``lora_r`` and scale ``lora_alpha``, drawn from ``seed``
    (default: the policy's seed); the run passes its config's values.
    """
    if mode not in ("auto", "lora", "full"):
        raise ModelError(f"train mode: unknown mode {mode!r} (use auto, lora, full)")
    if policy.is_lora:
        return policy  # a loaded adapter checkpoint keeps training its adapter
    if mode == "auto":
        mode = "full" if policy.num_parameters() < FULL_FINETUNE_MAX_PARAMS else "lora"
    return (
        use_full_finetune(policy)
        if mode == "full"
        else add_lora(policy, r=lora_r, alpha=lora_alpha, seed=seed)
    )


def _replace_model(policy: Policy, model: Any) -> Policy:
    return Policy(
        model=model,
        tokenizer=policy.tokenizer,
        spec=policy.spec,
        device=policy.device,
        chat=policy.chat,
        base_spec=policy.base_spec,
        seed=policy.seed,
        step_format=policy.step_format,
    )
