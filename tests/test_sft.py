"""SFT with TRL's SFTTrainer: tokenization (loss on the completion, EOS placement) and real training runs."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import random

import pytest
import torch

from presrm.config import SFTConfig
from presrm.model.adapters import add_lora, prepare_for_training
from presrm.model.charvocab import char_vocab
from presrm.model.encoding import encode_continuations, encode_prompts
from presrm.model.generation import generate_steps
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.model.scoring import sequence_logprobs
from presrm.tasks import load_task
from presrm.train.eft import ift_examples
from presrm.train.examples import SFTExample
from presrm.train.sft import tokenize_sft, train_sft
from presrm.train.trl_support import IGNORE_INDEX

NEWLINE_ID = char_vocab()["\n"]


def _examples(policy: Policy, n: int = 6) -> list[SFTExample]:
    task = load_task("arith", {"n_ops": 1, "max_operand": 9})
    return ift_examples(policy, task, task.sample(n, "train", seed=0))


def _mean_nll(policy: Policy, examples: list[SFTExample]) -> float:
    """Per-token NLL of the completions (and their EOS) — measured independently of the trainer."""
    eos = policy.tokenizer.eos_token
    targets = [e.completion + (eos if e.eos else "") for e in examples]
    logps = sequence_logprobs(policy, [e.prompt for e in examples], targets)
    tokens = sum(len(ids) for ids in encode_continuations(policy, targets))
    return -sum(logps) / tokens


def test_tokenize_sft_masks_the_prompt_and_places_eos() -> None:
    policy = load_policy("tiny", device="cpu")
    examples = [
        SFTExample(policy.solution_prompt("Add 2 and 3."), "Step 1: 2 + 3 = 5\nStep 2: The answer is 5.\n"),
        SFTExample(policy.solution_prompt("Add 2 and 3.") + "Step 1:", " 2 + 3 = 5\n", eos=False),
    ]
    rows = tokenize_sft(policy, examples)
    eos = policy.tokenizer.eos_token_id
    for ex, row in zip(examples, rows, strict=True):
        prompt_ids = encode_prompts(policy, [ex.prompt])[0]
        completion_ids = encode_continuations(policy, [ex.completion])[0]
        assert prompt_ids[0] == policy.tokenizer.bos_token_id  # raw prompt: BOS, like generation
        assert row["input_ids"][: len(prompt_ids)] == prompt_ids
        assert row["labels"][: len(prompt_ids)] == [IGNORE_INDEX] * len(prompt_ids)
        target = row["labels"][len(prompt_ids) :]
        assert target == row["input_ids"][len(prompt_ids) :]
        if ex.eos:
            assert target == completion_ids + [eos]
        else:
            assert target == completion_ids and target[-1] == NEWLINE_ID and eos not in target
    # A solution split into steps trains the same tokens in the same contexts as the whole
    # solution (only the "Step k:" headers move into the prompt).
    task = load_task("arith", {"n_ops": 3})
    problem = task.sample(1, "train", seed=0)[0]
    whole = tokenize_sft(policy, ift_examples(policy, task, [problem]))[0]
    split = tokenize_sft(policy, ift_examples(policy, task, [problem], mode="steps"))
    for row in split:
        assert whole["input_ids"][: len(row["input_ids"])] == row["input_ids"]
    assert split[-1]["input_ids"] == whole["input_ids"] and whole["input_ids"][-1] == eos
    assert tokenize_sft(policy, []) == []
    assert train_sft(policy, [], SFTConfig(lr=1e-3, epochs=1, batch_size=2), seed=0) == []


def test_sft_full_finetune_lowers_the_loss_and_changes_the_weights() -> None:
    policy = prepare_for_training(load_policy("tiny", device="cpu"), "full")
    examples = _examples(policy)
    before_nll = _mean_nll(policy, examples)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    logged: list[tuple[int, dict[str, float]]] = []
    random.seed(1234)
    torch.manual_seed(1234)
    expected_py, expected_torch = random.random(), torch.rand(1)
    random.seed(1234)
    torch.manual_seed(1234)

    records = train_sft(
        policy,
        examples,
        SFTConfig(lr=1e-2, epochs=4, batch_size=3),
        seed=0,
        log=lambda s, m: logged.append((s, m)),
    )

    # The caller's random streams are untouched by the trainer's reseeding.
    assert random.random() == expected_py and torch.equal(torch.rand(1), expected_torch)
    after_nll = _mean_nll(policy, examples)
    assert after_nll < before_nll - 0.5, (before_nll, after_nll)
    changed = [n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == len(before)  # every weight of a full fine-tune moves
    # One log line per optimizer step (6 examples / 3 per batch * 4 epochs), then the summary.
    steps = [r for r in records if "loss" in r]
    assert [int(r["step"]) for r in steps] == list(range(1, 9))
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert "train_loss" in records[-1]
    assert [s for s, _ in logged] == [int(r["step"]) for r in records]
    # Left as the search needs it: eval mode, left padding, the class's own forward.
    assert not policy.model.training
    assert policy.tokenizer.padding_side == "left"
    assert "forward" not in vars(policy.model)
    out = generate_steps(policy, [examples[0].prompt], 1, temperature=0.0, max_new_tokens=8, seed=0)
    assert out[0][0].n_tokens >= 1


def test_sft_lora_trains_only_the_adapter() -> None:
    policy = add_lora(load_policy("tiny", device="cpu"), r=8, alpha=16)
    examples = _examples(policy)
    before_nll = _mean_nll(policy, examples)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}

    train_sft(policy, examples, SFTConfig(lr=2e-2, epochs=4, batch_size=3), seed=0)

    assert _mean_nll(policy, examples) < before_nll - 0.3
    lora = {n for n in before if "lora_" in n}
    changed = {n for n, p in policy.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= lora  # the base weights never move
    assert any(".lora_B." in n for n in changed)
    assert "forward" not in vars(policy.model.get_base_model())


def test_sft_is_reproducible_for_a_seed() -> None:
    runs = []
    for _ in range(2):
        policy = prepare_for_training(load_policy("tiny", device="cpu"), "full")
        train_sft(policy, _examples(policy, 4), SFTConfig(lr=1e-2, epochs=1, batch_size=2), seed=3)
        runs.append(torch.cat([p.detach().flatten() for p in policy.model.parameters()]))
    assert torch.allclose(runs[0], runs[1])


def test_sft_rejects_bad_settings() -> None:
    policy = load_policy("tiny", device="cpu")
    with pytest.raises(ValueError):
        train_sft(policy, _examples(policy, 2), SFTConfig(lr=1e-3, epochs=0, batch_size=2), seed=0)
