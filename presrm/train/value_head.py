"""A scalar value head on a causal LM's last hidden state, and the policy+value wrapper PPO trains."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from presrm.errors import ModelError
from presrm.train.logprobs import lm_response_stats

VALUE_HEAD_FILE = "value_head.safetensors"


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
    """Runs the policy (a transformers causal LM, or a PeftModel around one) once and returns the
    response tokens' log-probs and entropies and the values of the states that choose them.

    One module holding both, so ``accelerate.prepare`` wraps them together and DDP averages the
    value head's gradients along with the policy's (and the chunked LM head runs inside it).
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
        self._head_checked = False

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        response_ids: torch.Tensor,
        response_mask: torch.Tensor,
        chunk: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs, entropies and values ``[B, T]`` of the response (the last T columns)."""
        logprob, entropy, hidden = lm_response_stats(
            self.policy,
            input_ids,
            attention_mask,
            position_ids,
            response_ids,
            response_mask,
            chunk,
            check_head=bool(chunk) and not self._head_checked,
        )
        self._head_checked = self._head_checked or bool(chunk)
        t_len = response_ids.shape[1]
        p = input_ids.shape[1] - t_len
        values = self.value_head(hidden[:, p - 1 : p - 1 + t_len])
        return logprob, entropy, values


def save_value_head(head: ValueHead, directory: str | Path) -> Path:
    """Write the head next to a checkpoint's weights (``value_head.safetensors``)."""
    path = Path(directory) / VALUE_HEAD_FILE
    state = {k: v.detach().to("cpu").contiguous() for k, v in head.state_dict().items()}
    save_file(state, str(path))
    return path


def load_value_head(directory: str | Path, device: torch.device | str = "cpu") -> ValueHead | None:
    """The head saved with a checkpoint, or None when it has none (a warm-up or step-DPO model)."""
    path = Path(directory) / VALUE_HEAD_FILE
    if not path.is_file():
        return None
    try:
        state = load_file(str(path))
        head = ValueHead(int(state["linear.weight"].shape[1]), seed=None)
        head.load_state_dict(state)
    except (KeyError, RuntimeError, OSError, SafetensorError) as exc:
        raise ModelError(f"{path}: not a value head ({type(exc).__name__}: {exc})") from exc
    return head.to(device)
