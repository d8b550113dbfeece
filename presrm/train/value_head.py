"""A scalar value head on a causal LM's last hidden state, and the policy+value wrapper PPO trains."""

from __future__ import annotations

import torch
from torch import nn


class ValueHead(nn.Module):
    """Linear map hidden state → scalar value, kept in float32.

    Initialised small (std ``init_std``, zero bias) so the first values are ≈ 0 and
    the first advantages are ≈ the rewards rather than noise from a random head.
    """

    def __init__(self, hidden_size: int, init_std: float = 1e-2, seed: int | None = 0) -> None:
        super().__init__()
        self.linear = nn.Linear(hidden_size, 1, dtype=torch.float32)
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        with torch.no_grad():
            self.linear.weight.normal_(0.0, init_std, generator=gen)
            self.linear.bias.zero_()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``[B, L, H]`` → ``[B, L]`` values (computed in float32 whatever the model's dtype)."""
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)


def hidden_size_of(model: nn.Module) -> int:
    """The hidden size from a transformers model's config (works through a PeftModel)."""
    config = model.config
    for name in ("hidden_size", "n_embd", "d_model"):
        size = getattr(config, name, None)
        if isinstance(size, int):
            return size
    text = getattr(config, "get_text_config", None)
    if callable(text):
        size = getattr(text(), "hidden_size", None)
        if isinstance(size, int):
            return size
    raise ValueError(f"cannot find the hidden size in {type(config).__name__}")


class PolicyWithValue(nn.Module):
    """Runs the policy (a transformers causal LM, or a PeftModel around one) once and
    returns ``(logits, values)``.

    One module holding both, so ``accelerator.prepare`` wraps them together and DDP
    averages the value head's gradients along with the policy's.
    """

    def __init__(self, policy: nn.Module, value_head: ValueHead | None = None, seed: int | None = 0) -> None:
        super().__init__()
        self.policy = policy
        self.value_head = (
            value_head if value_head is not None else ValueHead(hidden_size_of(policy), seed=seed)
        )
        # Put the head where the model is (it stays float32).
        device = next(policy.parameters()).device
        self.value_head.to(device)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        logits_to_keep: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits ``[B, K, V]`` and values ``[B, L]``.

        ``logits_to_keep`` > 0 asks the LM head for the last K positions only (saves
        the vocabulary projection over the prompt); values cover every position.
        """
        kwargs: dict[str, object] = {}
        if logits_to_keep:
            kwargs["logits_to_keep"] = logits_to_keep
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=True,
            use_cache=False,
            **kwargs,
        )
        values = self.value_head(out.hidden_states[-1])
        return out.logits, values
