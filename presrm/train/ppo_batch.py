"""PPO minibatches: rollouts padded into tensors with response and step-end masks."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from presrm.train.examples import StepRollout


@dataclass
class Batch:
    """A collated batch; per-token tensors are in response coordinates ``[B, T]``."""

    input_ids: torch.Tensor  # [B, P + T]: prompt left-padded to P, response right-padded to T
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    response_ids: torch.Tensor  # [B, T]
    response_mask: torch.Tensor  # [B, T] float
    prompt_len: int  # P: the response starts at this column
    step_ends: list[list[int]]
    raw_rewards: list[list[float | None]]
    extra: dict[str, torch.Tensor] = field(default_factory=dict)  # old_logprob, advantages, …

    @property
    def size(self) -> int:
        return int(self.input_ids.shape[0])

    def rows(self, idx: torch.Tensor) -> Batch:
        """The rows ``idx``, with columns that are padding in all of them trimmed away."""
        resp_mask = self.response_mask[idx]
        attn = self.attention_mask[idx]
        t_len = int(resp_mask.sum(1).max().item())
        longest_prompt = int(attn[:, : self.prompt_len].sum(1).max().item())
        lead = self.prompt_len - longest_prompt  # left-padding columns shared by every row
        cols = slice(lead, self.prompt_len + t_len)
        ids = idx.tolist()
        return Batch(
            input_ids=self.input_ids[idx][:, cols],
            attention_mask=attn[:, cols],
            position_ids=self.position_ids[idx][:, cols],
            response_ids=self.response_ids[idx][:, :t_len],
            response_mask=resp_mask[:, :t_len],
            prompt_len=self.prompt_len - lead,
            step_ends=[self.step_ends[i] for i in ids],
            raw_rewards=[self.raw_rewards[i] for i in ids],
            extra={k: v[idx][:, :t_len] for k, v in self.extra.items()},
        )


def collate(rollouts: list[StepRollout], pad_id: int, device: torch.device | str = "cpu") -> Batch:
    """Left-pad prompts and right-pad responses so every response starts at one column."""
    p_len = max(len(r.prompt_ids) for r in rollouts)
    t_len = max(len(r.response_ids) for r in rollouts)
    b = len(rollouts)
    input_ids = torch.full((b, p_len + t_len), pad_id, dtype=torch.long)
    attention = torch.zeros((b, p_len + t_len), dtype=torch.long)
    for i, r in enumerate(rollouts):
        resp = r.response_ids
        input_ids[i, p_len - len(r.prompt_ids) : p_len] = torch.tensor(r.prompt_ids)
        input_ids[i, p_len : p_len + len(resp)] = torch.tensor(resp)
        attention[i, p_len - len(r.prompt_ids) : p_len + len(resp)] = 1
    # Explicit positions: with left padding, position 0 must be the first real token.
    position_ids = (attention.cumsum(1) - 1).clamp(min=0)
    return Batch(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
        response_ids=input_ids[:, p_len:].to(device),
        response_mask=attention[:, p_len:].float().to(device),
        prompt_len=p_len,
        step_ends=[r.step_end_positions for r in rollouts],
        raw_rewards=[[None if x is None else float(x) for x in r.step_rewards] for r in rollouts],
    )


def response_logprobs(logits: torch.Tensor, response_ids: torch.Tensor) -> torch.Tensor:
    """Log-probability of each response token, ``[B, T]``, from the logits that predict them."""
    logits = logits.float()
    picked = logits.gather(-1, response_ids.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)
