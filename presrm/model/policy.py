"""The policy: a causal LM with its tokenizer, device and prompt format."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from presrm.errors import ModelError
from presrm.steps import LINE, StepFormat, plain_solution_prompt, solution_user_message

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass
class Policy:
    """A causal LM with its tokenizer, ready for generation and training.

    ``spec`` is what the policy was loaded from; ``base_spec`` (and ``seed`` for ``tiny``)
    rebuilds the weights under a LoRA adapter, so adapter checkpoints can be reloaded.
    ``step_format`` is how its solutions are split into steps (the run sets it from its config).
    """

    model: Any  # PreTrainedModel or peft.PeftModel
    tokenizer: Any  # a transformers tokenizer
    spec: str
    device: torch.device
    chat: bool
    base_spec: str = ""
    seed: int = 0
    step_format: StepFormat = LINE

    def __post_init__(self) -> None:
        if not self.base_spec:
            self.base_spec = self.spec

    def solution_prompt(self, question: str) -> str:
        """The prompt that asks for a step-by-step solution of ``question``."""
        if self.chat:
            return self.complete_prompt(solution_user_message(question, self.step_format))
        return plain_solution_prompt(question)

    def complete_prompt(self, user_text: str) -> str:
        """``user_text`` as one user turn, ready for the model to answer."""
        if self.chat:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
            )
            return str(text)
        return user_text + "\n"

    @property
    def is_lora(self) -> bool:
        return is_peft(self.model)

    def num_parameters(self) -> int:
        """Parameters of the underlying model (adapters excluded)."""
        base = self.model.get_base_model() if self.is_lora else self.model
        return sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"device: unknown device {device!r} (use auto, cpu, cuda, cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device: {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        # bf16 on GPUs; fp32 on CPU so that CPU runs are exact and reproducible.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelError(f"dtype: unknown dtype {dtype!r} (use auto, {', '.join(_DTYPES)})")
    return _DTYPES[dtype]


def is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def finish_policy(
    model: Any, tokenizer: Any, spec: str, device: torch.device, dtype: torch.dtype, **extra: Any
) -> Policy:
    """Common tail of every loader: pad token, left padding, device, dtype, eval mode."""
    if tokenizer.pad_token is None:
        # Padding is always masked, so reusing EOS (or UNK) as pad is harmless.
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    tokenizer.padding_side = "left"  # generation appends on the right
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device=device, dtype=dtype)
    model.eval()
    chat = bool(getattr(tokenizer, "chat_template", None))
    return Policy(model=model, tokenizer=tokenizer, spec=spec, device=device, chat=chat, **extra)
