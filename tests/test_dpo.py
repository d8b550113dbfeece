"""Step-wise DPO with TRL's DPOTrainer: EOS only after final steps, real training, reference = current policy."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from presrm.config import StepDPOConfig
from presrm.model.adapters import add_lora, prepare_for_training
from presrm.model.charvocab import char_vocab
from presrm.model.encoding import encode_continuations, encode_prompts
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.model.scoring import sequence_logprobs
from presrm.steps import render_prefix, step_header
from presrm.tasks import load_task
from presrm.train.dpo import tokenize_step_pairs, train_step_dpo
from presrm.train.examples import StepPair

NEWLINE_ID = char_vocab()["\n"]


def _pairs(policy: Policy) -> list[StepPair]:
    """For each problem: a non-final pair at step 1 and a final pair at the answer step."""
    task = load_task("arith", {"n_ops": 1, "max_operand": 9})
    pairs = []
    for problem in task.sample(3, "train", seed=0):
        prompt = policy.solution_prompt(problem.question)
        first, answer = problem.steps
        a, op, b, _eq, c = first.split()
        pairs.append(StepPair(prompt + step_header(1), f" {first}", f" {a} {op} {b} = {int(c) + 1}", False))
        prefix = render_prefix(prompt, task.reference_steps(problem)[:1]) + step_header(2)
        wrong = f" The answer is {int(problem.answer) + 2}."
        pairs.append(StepPair(prefix, f" {answer}", wrong, True))
    return pairs


def _margins(policy: Policy, pairs: list[StepPair]) -> list[float]:
    """log π(chosen) − log π(rejected) per pair, measured outside the trainer (newline included)."""
    prompts = [p.prompt for p in pairs]
    chosen = sequence_logprobs(policy, prompts, [p.chosen + "\n" for p in pairs])
    rejected = sequence_logprobs(policy, prompts, [p.rejected + "\n" for p in pairs])
    return [c - r for c, r in zip(chosen, rejected, strict=True)]


class _CaptureBatches(TrainerCallback):
    """Records the batches the trainer's dataloader really yields (input ids and completion masks)."""

    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        loader = kwargs["train_dataloader"]
        self.batches = [{k: v.clone() for k, v in batch.items() if torch.is_tensor(v)} for batch in loader]


def test_non_final_steps_end_at_the_newline_without_eos() -> None:
    policy = load_policy("tiny", device="cpu")
    pairs = _pairs(policy)
    eos = policy.tokenizer.eos_token_id
    rows = tokenize_step_pairs(policy, pairs)
    for pair, row in zip(pairs, rows, strict=True):
        assert row["prompt_ids"] == encode_prompts(policy, [pair.prompt])[0]
        for text, ids in ((pair.chosen, row["chosen_ids"]), (pair.rejected, row["rejected_ids"])):
            step_ids = encode_continuations(policy, [text + "\n"])[0]
            if pair.is_final:
                assert ids == step_ids + [eos] and ids[-2:] == [NEWLINE_ID, eos]
            else:
                assert ids == step_ids and ids[-1] == NEWLINE_ID and eos not in ids
    # A step given with its newline is not doubled; the rejected side can differ in finality.
    mixed = StepPair(pairs[0].prompt, " 1 + 2 = 3\n", " The answer is 3.", False, rejected_final=True)
    row = tokenize_step_pairs(policy, [mixed])[0]
    assert row["chosen_ids"][-2:] != [NEWLINE_ID, NEWLINE_ID] and row["chosen_ids"][-1] == NEWLINE_ID
    assert row["rejected_ids"][-2:] == [NEWLINE_ID, eos]
    with pytest.raises(ValueError, match="identical"):
        tokenize_step_pairs(policy, [StepPair("p", " 1 + 1 = 2", " 1 + 1 = 2 ", False)])
    assert train_step_dpo(policy, [], StepDPOConfig(beta=0.1, lr=1e-3, epochs=1, batch_size=2), seed=0) == []


def test_step_dpo_lora_widens_the_margin_and_trains_only_the_adapter() -> None:
    policy = add_lora(load_policy("tiny", device="cpu"))
    pairs = _pairs(policy)
    before_margins = _margins(policy, pairs)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    capture = _CaptureBatches()

    records = train_step_dpo(
        policy, pairs, StepDPOConfig(beta=0.5, lr=1e-2, epochs=4, batch_size=2), seed=0, callbacks=[capture]
    )

    # What the trainer was fed: chosen rows first, then rejected; EOS only in final steps' completions.
    eos = policy.tokenizer.eos_token_id
    seen_final = seen_step = 0
    for batch in capture.batches:
        for ids, mask in zip(batch["input_ids"], batch["completion_mask"], strict=True):
            completion = ids[mask.bool()].tolist()
            if eos in completion:
                assert completion[-2:] == [NEWLINE_ID, eos] and completion.count(eos) == 1
                seen_final += 1
            else:
                assert completion[-1] == NEWLINE_ID
                seen_step += 1
    assert seen_final == seen_step == len(pairs)  # one epoch: 3 pairs × 2 sides of each kind

    after_margins = _margins(policy, pairs)
    # DPO moves the pairs together through one shared adapter: the total margin must grow and
    # nearly every pair with it (one pair may be dragged back by the others, as a CI run saw).
    assert sum(after_margins) - sum(before_margins) > 1.0, (before_margins, after_margins)
    assert sum(a > b for a, b in zip(after_margins, before_margins, strict=True)) >= len(pairs) - 1
    changed = {n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all("lora_" in n for n in changed)
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 12  # 6 pairs / 2 per batch × 4 epochs
    assert steps[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)  # reference = policy at the start
    assert steps[-1]["rewards/margins"] > 0.5 and steps[-1]["loss"] < steps[0]["loss"]
    # TRL's temporary "ref" adapter is gone; the trained adapter is still the active one.
    assert list(policy.model.peft_config) == ["default"] and policy.model.active_adapter == "default"
    assert not policy.model.training and "forward" not in vars(policy.model.get_base_model())


def test_step_dpo_reference_is_the_current_adapter_not_the_base() -> None:
    policy = add_lora(load_policy("tiny", device="cpu"))
    pairs = _pairs(policy)
    train_step_dpo(policy, pairs, StepDPOConfig(beta=0.5, lr=1e-2, epochs=2, batch_size=3), seed=0)
    trained = {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_" in n}
    # Second iteration: the trained adapter is its own reference, so the first step's
    # implicit rewards are exactly zero (against the base model they would not be).
    records = train_step_dpo(policy, pairs, StepDPOConfig(beta=0.5, lr=1e-2, epochs=1, batch_size=3), seed=1)
    first = records[0]
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-6)
    assert first["rewards/rejected"] == pytest.approx(0.0, abs=1e-6)
    with policy.model.disable_adapter():
        base_margins = _margins(policy, pairs)
    assert any(
        abs(m) > 1e-3 for m in (a - b for a, b in zip(_margins(policy, pairs), base_margins, strict=True))
    )
    assert any(not torch.equal(p, trained[n]) for n, p in policy.model.named_parameters() if "lora_" in n)
    assert list(policy.model.peft_config) == ["default"]


def test_step_dpo_full_finetune_uses_a_frozen_copy_as_reference() -> None:
    policy = prepare_for_training(load_policy("tiny", device="cpu"), "full")
    pairs = _pairs(policy)
    before_margins = _margins(policy, pairs)
    before = [p.detach().clone() for p in policy.model.parameters()]

    records = train_step_dpo(policy, pairs, StepDPOConfig(beta=0.5, lr=5e-3, epochs=4, batch_size=2), seed=0)

    after_margins = _margins(policy, pairs)
    assert sum(after_margins) - sum(before_margins) > 1.0, (before_margins, after_margins)
    assert sum(a > b for a, b in zip(after_margins, before_margins, strict=True)) >= len(pairs) - 1
    assert all(not torch.equal(p, b) for p, b in zip(policy.model.parameters(), before, strict=True))
    assert records[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert all(p.requires_grad for p in policy.model.parameters())


def test_step_dpo_rejects_bad_settings() -> None:
    policy = add_lora(load_policy("tiny", device="cpu"))
    with pytest.raises(ValueError, match="beta"):
        train_step_dpo(
            policy, _pairs(policy), StepDPOConfig(beta=0.0, lr=1e-3, epochs=1, batch_size=2), seed=0
        )


def test_sft_weight_adds_the_chosen_steps_nll() -> None:
    """RPO: the same DPO run plus the chosen steps' NLL ends with the chosen steps likelier."""

    def chosen_logp(sft_weight: float) -> tuple[float, list[dict[str, float]]]:
        policy = prepare_for_training(load_policy("tiny", device="cpu"), "full")
        pairs = _pairs(policy)
        records = train_step_dpo(
            policy,
            pairs,
            StepDPOConfig(beta=0.5, lr=5e-3, epochs=2, batch_size=2, sft_weight=sft_weight),
            seed=0,
        )
        chosen = sequence_logprobs(policy, [p.prompt for p in pairs], [p.chosen + "\n" for p in pairs])
        return sum(chosen), records

    plain, plain_records = chosen_logp(0.0)
    rpo, rpo_records = chosen_logp(2.0)
    assert rpo > plain + 1.0, (plain, rpo)
    # the loss TRL reports includes the NLL term: larger than the DPO loss alone at the first step
    assert rpo_records[0]["loss"] > plain_records[0]["loss"] + 1.0
