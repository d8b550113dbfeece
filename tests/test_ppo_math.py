"""PPO math against values worked out by hand in each test."""

from __future__ import annotations

import math

import pytest
import torch

from presrm.train.ppo_math import (
    compute_gae,
    entropy_from_logits,
    kl_penalty,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    place_step_rewards,
    policy_loss,
    token_rewards,
    value_loss,
)


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(list(rows), dtype=torch.float32)


def test_masked_sum_and_mean_ignore_padding_even_if_it_is_nan() -> None:
    x = t([1.0, 2.0, 3.0, float("nan")], [4.0, 5.0, float("inf"), 0.0])
    mask = t([1, 1, 1, 0], [1, 1, 0, 0])
    assert masked_sum(x, mask).item() == pytest.approx(1 + 2 + 3 + 4 + 5)
    assert masked_mean(x, mask).item() == pytest.approx(15 / 5)
    assert masked_mean(x, mask, dim=1).tolist() == pytest.approx([2.0, 4.5])
    assert masked_sum(x, mask, dim=0).tolist() == pytest.approx([5.0, 7.0, 3.0, 0.0])


def test_masked_var_and_whiten_use_only_masked_entries() -> None:
    x = t([2.0, 4.0, 6.0, 100.0])
    mask = t([1, 1, 1, 0])
    # mean 4; squared deviations 4, 0, 4 -> biased 8/3, unbiased 8/2 = 4.
    assert masked_var(x, mask, unbiased=False).item() == pytest.approx(8 / 3)
    assert masked_var(x, mask).item() == pytest.approx(4.0)
    # (x - 4) / 2 on the masked entries; the padded 100 is ignored and comes back as 0.
    assert masked_whiten(x, mask)[0].tolist() == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    # Without the shift the mean is kept: (x - 4) / 2 + 4.
    assert masked_whiten(x, mask, shift_mean=False)[0].tolist() == pytest.approx(
        [3.0, 4.0, 5.0, 0.0], abs=1e-6
    )


def test_masked_var_needs_two_entries_when_unbiased() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        masked_var(t([1.0, 2.0]), t([1, 0]))


def test_kl_estimators_by_hand() -> None:
    # pi = 0.5, pi_ref = 0.25 -> log r = ln 2; and the reverse pair.
    lp = torch.log(torch.tensor([0.5, 0.25]))
    ref = torch.log(torch.tensor([0.25, 0.5]))
    ln2 = math.log(2.0)
    assert kl_penalty(lp, ref, "k1").tolist() == pytest.approx([ln2, -ln2])
    assert kl_penalty(lp, ref, "k2").tolist() == pytest.approx([0.5 * ln2**2, 0.5 * ln2**2])
    # k3 = pi_ref/pi - 1 + log(pi/pi_ref): 0.5 - 1 + ln2 and 2 - 1 - ln2.
    assert kl_penalty(lp, ref, "k3").tolist() == pytest.approx([0.5 - 1 + ln2, 2 - 1 - ln2])
    assert kl_penalty(lp, ref, "abs").tolist() == pytest.approx([ln2, ln2])
    with pytest.raises(ValueError, match="unknown KL"):
        kl_penalty(lp, ref, "k9")


def test_k3_is_nonnegative_and_k1_k3_are_unbiased_for_the_true_kl() -> None:
    g = torch.Generator().manual_seed(0)
    lp, ref = torch.randn(1000, generator=g) * 3, torch.randn(1000, generator=g) * 3
    assert (kl_penalty(lp, ref, "k3") >= 0).all()
    # Exact expectation over a categorical: sum_x pi(x) * estimator(x) == KL(pi || ref).
    pi = torch.softmax(torch.randn(6, generator=g), dim=0)
    pref = torch.softmax(torch.randn(6, generator=g), dim=0)
    true_kl = (pi * (pi.log() - pref.log())).sum().item()
    for kind in ("k1", "k3"):
        assert (pi * kl_penalty(pi.log(), pref.log(), kind)).sum().item() == pytest.approx(true_kl, rel=1e-5)


def test_place_step_rewards_on_each_steps_last_token() -> None:
    placed = place_step_rewards([[1, 3], [0]], [[0.5, -1.0], [2.0]], response_len=4)
    assert placed.tolist() == [[0.0, 0.5, 0.0, -1.0], [2.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="outside"):
        place_step_rewards([[4]], [[1.0]], response_len=4)
    with pytest.raises(ValueError, match="step rewards"):
        place_step_rewards([[0, 1]], [[1.0]], response_len=4)


def test_token_rewards_subtract_the_per_token_kl() -> None:
    scores = t([0.0, 1.0, 0.0, 0.0])
    lp, ref = t([-1.0, -2.0, -0.5, -3.0]), t([-1.5, -1.0, -0.5, -9.0])
    mask = t([1, 1, 1, 0])
    rewards, kl = token_rewards(scores, lp, ref, mask, kl_coef=0.1, kind="k1")
    # k1 = lp - ref = [0.5, -1.0, 0.0, (masked)]; reward = score - 0.1 * k1.
    assert kl[0].tolist() == pytest.approx([0.5, -1.0, 0.0, 0.0])
    assert rewards[0].tolist() == pytest.approx([-0.05, 1.1, 0.0, 0.0])


def test_gae_by_hand_with_trailing_padding() -> None:
    rewards = t([0.0, 0.0, 1.0, 5.0])
    values = t([0.5, 0.2, 0.4, 9.0])
    mask = t([1, 1, 1, 0])
    adv, ret = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # Padding is skipped and the value after the last real token is 0:
    # d2 = 1 + 0 - 0.4 = 0.6                 A2 = 0.6
    # d1 = 0 + 0.4 - 0.2 = 0.2               A1 = 0.2 + 0.5*0.6 = 0.5
    # d0 = 0 + 0.2 - 0.5 = -0.3              A0 = -0.3 + 0.5*0.5 = -0.05
    assert adv[0].tolist() == pytest.approx([-0.05, 0.5, 0.6, 0.0])
    assert ret[0].tolist() == pytest.approx([0.45, 0.7, 1.0, 0.0])


def test_gae_skips_a_masked_token_in_the_middle() -> None:
    rewards = t([1.0, 7.0, 0.0, 2.0])
    values = t([0.5, 3.0, 1.0, 0.5])
    mask = t([1, 0, 1, 1])
    adv, _ = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # d3 = 2 - 0.5 = 1.5; A3 = 1.5
    # d2 = 0 + 0.5 - 1.0 = -0.5; A2 = -0.5 + 0.5*1.5 = 0.25
    # token 1 is masked: its reward 7 and value 3 are never seen
    # d0 = 1 + 1.0 - 0.5 = 1.5; A0 = 1.5 + 0.5*0.25 = 1.625
    assert adv[0].tolist() == pytest.approx([1.625, 0.0, 0.25, 1.5])


def test_gae_with_lambda_one_is_monte_carlo_return_minus_value() -> None:
    g = torch.Generator().manual_seed(1)
    r, v = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g)
    adv, ret = compute_gae(r, v, torch.ones(3, 6), gamma=1.0, lam=1.0)
    reward_to_go = r.flip(1).cumsum(1).flip(1)
    assert torch.allclose(ret, reward_to_go, atol=1e-5)
    assert torch.allclose(adv, reward_to_go - v, atol=1e-5)


def test_policy_loss_clipping_by_hand() -> None:
    adv = t([1.0, 1.0, -1.0, -1.0, 1.0])
    ratio = t([1.3, 1.1, 0.7, 0.9, 0.5])
    old = torch.zeros_like(ratio)
    mask = t([1, 1, 1, 1, 0])
    loss, clipfrac, approx_kl = policy_loss(ratio.log(), old, adv, mask, clip=0.2)
    # per token max(-A r, -A clip(r, 0.8, 1.2)):
    #   A=+1 r=1.3: max(-1.3, -1.2) = -1.2 (clipped)   A=+1 r=1.1: -1.1
    #   A=-1 r=0.7: max(0.7, 0.8) = 0.8 (clipped)      A=-1 r=0.9: 0.9
    assert loss.item() == pytest.approx((-1.2 - 1.1 + 0.8 + 0.9) / 4)
    assert clipfrac.item() == pytest.approx(2 / 4)
    assert approx_kl.item() == pytest.approx(-sum(math.log(x) for x in (1.3, 1.1, 0.7, 0.9)) / 4)


def test_policy_loss_gradient_stops_only_beyond_the_boundary() -> None:
    adv = t([1.0, 1.0, 1.0, 1.0])
    # just inside, just outside the upper bound; far below it (the pessimistic side keeps the gradient).
    ratio = t([1.2 - 1e-3, 1.2 + 1e-3, 0.5, 1.0])
    logprob = ratio.log().requires_grad_(True)
    loss, clipfrac, _ = policy_loss(logprob, torch.zeros_like(ratio), adv, torch.ones_like(ratio), clip=0.2)
    loss.backward()
    assert logprob.grad is not None
    # d/dlogprob of -A r / N = -A r / N where unclipped; 0 where clipped.
    expected = [-(1.2 - 1e-3) / 4, 0.0, -0.5 / 4, -1.0 / 4]
    assert logprob.grad[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert clipfrac.item() == pytest.approx(1 / 4)


def test_value_loss_by_hand() -> None:
    values = t([1.0, 0.0, 0.5, 3.0])
    old = t([0.5, 0.5, 0.5, 0.5])
    returns = t([2.0, 0.0, 0.0, 0.0])
    mask = t([1, 1, 1, 0])
    loss, clipfrac = value_loss(values, old, returns, mask, clip=0.2)
    # clipped values: 0.7, 0.3, 0.5
    #   max((1-2)^2, (0.7-2)^2) = 1.69 (clipped); max(0, 0.09) = 0.09 (clipped); max(0.25, 0.25) = 0.25
    assert loss.item() == pytest.approx(0.5 * (1.69 + 0.09 + 0.25) / 3)
    assert clipfrac.item() == pytest.approx(2 / 3)


def test_entropy_from_logits() -> None:
    uniform = torch.zeros(2, 4)
    assert entropy_from_logits(uniform).tolist() == pytest.approx([math.log(4)] * 2)
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    p = torch.softmax(logits, -1)
    assert entropy_from_logits(logits).item() == pytest.approx(-(p * p.log()).sum().item(), rel=1e-6)
    assert entropy_from_logits(torch.tensor([[50.0, 0.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)
