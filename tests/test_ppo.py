"""StepPPOTrainer on tiny Llama models built in-process (full fine-tuning and LoRA)."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, get_peft_model
from tokenizers import Tokenizer, models
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

from presrm.config import PPOConfig
from presrm.model.tiny import tiny_config
from presrm.train.examples import StepRollout
from presrm.train.ppo import StepPPOTrainer
from presrm.train.ppo_batch import collate, response_logprobs

os.environ.setdefault("HF_HUB_OFFLINE", "1")
VOCAB = 64
GOOD = 7  # the token the learning-signal test rewards


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {f"t{i}": i for i in range(VOCAB)}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel(vocab=vocab, unk_token="t1")),
        pad_token="t0",
        unk_token="t1",
        eos_token="t2",
    )


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config(VOCAB))  # presrm's own tiny architecture


def with_lora(model: LlamaForCausalLM) -> torch.nn.Module:
    return get_peft_model(
        model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"], lora_dropout=0.0)
    )


def random_rollouts(n: int, seed: int) -> list[StepRollout]:
    g = torch.Generator().manual_seed(seed)

    def randint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi, (1,), generator=g))

    out = []
    for _ in range(n):
        steps = [
            torch.randint(3, VOCAB, (randint(1, 6),), generator=g).tolist() for _ in range(randint(1, 4))
        ]
        prompt = torch.randint(3, VOCAB, (randint(2, 9),), generator=g).tolist()
        out.append(StepRollout(prompt, steps, torch.randn(len(steps), generator=g).tolist()))
    return out


def snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def all_finite(history: list[dict[str, float]]) -> bool:
    return all(math.isfinite(v) for m in history for v in m.values())


def test_rollout_step_ends_and_validation() -> None:
    r = StepRollout([5, 6], [[10, 11, 12], [13], [14, 15]], [1.0, 0.0, -1.0])
    assert r.response_ids == [10, 11, 12, 13, 14, 15]
    assert r.step_end_positions == [2, 3, 5]
    with pytest.raises(ValueError, match="no tokens"):
        StepRollout([5], [[10], []], [1.0, 1.0])
    with pytest.raises(ValueError, match="step rewards"):
        StepRollout([5], [[10]], [1.0, 2.0])
    with pytest.raises(ValueError, match="kl_kind"):
        PPOConfig(kl_kind="k7")  # type: ignore[arg-type]


def test_padded_batch_logprobs_and_values_match_unpadded_forward() -> None:
    """Left-padded prompts + right-padded responses give the same per-token numbers as
    running each sequence alone (positions and alignment are right)."""
    model = tiny_llama()
    trainer = StepPPOTrainer(model, tiny_tokenizer(), PPOConfig(minibatch_size=3))
    rollouts = random_rollouts(5, seed=3)
    batch = collate(rollouts, trainer.pad_id)
    trainer._prepare(batch)
    head = trainer.value_head
    with torch.no_grad():
        for i, r in enumerate(rollouts):
            ids = torch.tensor([r.prompt_ids + r.response_ids])
            out = model(ids, output_hidden_states=True)
            p, n = len(r.prompt_ids), len(r.response_ids)
            lp = response_logprobs(out.logits[:, p - 1 : p - 1 + n], ids[:, p:])[0]
            values = head(out.hidden_states[-1])[0, p - 1 : p - 1 + n]
            assert torch.allclose(batch.extra["old_logprob"][i, :n], lp, atol=1e-5)
            assert torch.allclose(batch.extra["old_values"][i, :n], values, atol=1e-5)
            # Full fine-tuning: the reference is a frozen copy, identical at the start.
            assert torch.allclose(batch.extra["ref_logprob"][i, :n], lp, atol=1e-5)
            assert batch.response_mask[i].sum().item() == n


def test_full_finetune_train_runs_and_updates_weights() -> None:
    model = tiny_llama()
    cfg = PPOConfig(lr=1e-4, minibatch_size=4, ppo_epochs=2)
    trainer = StepPPOTrainer(model, tiny_tokenizer(), cfg)
    assert trainer.ref_model is not None and trainer.ref_model is not model
    before, ref_before = snapshot(model), snapshot(trainer.ref_model)
    head_before = snapshot(trainer.value_head)

    history = trainer.train(random_rollouts(10, seed=1))

    assert len(history) == 2 * math.ceil(10 / 4)  # epochs × minibatches
    assert set(history[0]) >= {
        "policy_loss",
        "value_loss",
        "kl",
        "reward_mean",
        "clipfrac",
        "approx_kl",
        "entropy",
        "grad_norm",
        "tokens",
    }
    assert all_finite(history)
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == its frozen copy
    assert sum(m["tokens"] for m in history[:3]) == sum(
        len(r.response_ids) for r in random_rollouts(10, seed=1)
    )
    after = snapshot(model)
    assert all(not torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(head_before[k], v) for k, v in snapshot(trainer.value_head).items())
    assert all(torch.equal(ref_before[k], v) for k, v in snapshot(trainer.ref_model).items())


def trained_adapter(seed: int = 0) -> torch.nn.Module:
    """A LoRA model whose adapter is not the identity (as after the warm-up): B set at random."""
    model = with_lora(tiny_llama(seed))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def response_lp(model: torch.nn.Module, rollouts: list[StepRollout]) -> list[torch.Tensor]:
    with torch.no_grad():
        out = []
        for r in rollouts:
            ids = torch.tensor([r.prompt_ids + r.response_ids])
            p, n = len(r.prompt_ids), len(r.response_ids)
            out.append(response_logprobs(model(ids).logits[:, p - 1 : p - 1 + n], ids[:, p:])[0])
        return out


def test_lora_reference_is_the_model_the_trainer_started_from() -> None:
    """The KL reference of a LoRA policy is the adapter as it was when the trainer was made (the
    previous iteration's model), not the base with the adapter off (the model before the warm-up);
    it stays that model across train() calls, and release() leaves only the trained adapter."""
    model = trained_adapter()
    start = copy.deepcopy(model).eval()
    rollouts = random_rollouts(6, seed=2)
    with torch.no_grad(), model.disable_adapter():
        base_lp = response_lp(model, rollouts)
    start_lp = response_lp(start, rollouts)
    assert max((a - b).abs().max().item() for a, b in zip(base_lp, start_lp, strict=True)) > 1e-3

    names = {n for n, _ in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    trainer = StepPPOTrainer(model, tiny_tokenizer(), PPOConfig(lr=1e-3, minibatch_size=4))
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
    before = snapshot(model)
    history = trainer.train(rollouts)
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference at the start
    assert any(abs(m["kl"]) > 1e-6 for m in history[1:])  # the adapter moved away from it
    for _ in range(2):  # later calls: the reference is still the starting model
        batch = collate(rollouts, trainer.pad_id)
        trainer._prepare(batch)
        for i, lp in enumerate(start_lp):
            assert torch.allclose(batch.extra["ref_logprob"][i, : lp.numel()], lp, atol=1e-5)
        assert not torch.allclose(batch.extra["old_logprob"], batch.extra["ref_logprob"], atol=1e-4)
        trainer.train(rollouts)

    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in set(before) - trainable)  # base + reference
    assert all(not torch.equal(before[k], after[k]) for k in trainable if "lora_B" in k)
    trainer.release()
    assert list(model.peft_config) == ["default"]
    assert {n for n, _ in model.named_parameters()} == names


def test_an_explicit_reference_model_is_used() -> None:
    other = tiny_llama(seed=5)
    trainer = StepPPOTrainer(
        tiny_llama(seed=0), tiny_tokenizer(), PPOConfig(minibatch_size=4), ref_model=other
    )
    history = trainer.train(random_rollouts(4, seed=4))
    assert trainer.ref_model is other
    assert abs(history[0]["kl"]) > 1e-3  # two different random models


def test_batch_reward_normalisation() -> None:
    trainer = StepPPOTrainer(tiny_llama(), tiny_tokenizer(), PPOConfig())
    norm = trainer._normalized_rewards([[1.0, 3.0], [5.0]])
    # mean 3, population std sqrt(8/3)
    s = math.sqrt(8 / 3)
    assert [x for row in norm for x in row] == pytest.approx([-2 / s, 0.0, 2 / s])
    assert trainer._normalized_rewards([[2.0], [2.0, 2.0]]) == [[0.0], [0.0, 0.0]]
    # Unrewarded steps (None) stay out of the statistics and get 0: with outcome rewards a
    # placeholder 0 on every intermediate step would otherwise become a penalty on all of them.
    outcome = trainer._normalized_rewards([[None, None, 1.0], [None, 0.0], [None, 1.0], [0.0]])
    s = math.sqrt(1 / 4)  # final rewards 1, 0, 1, 0: mean 0.5, std 0.5
    assert outcome == [
        [0.0, 0.0, pytest.approx(0.5 / s)],
        [0.0, pytest.approx(-0.5 / s)],
        [0.0, pytest.approx(0.5 / s)],
        [pytest.approx(-0.5 / s)],
    ]


def test_outcome_reward_raises_the_right_paths_and_lowers_the_wrong() -> None:
    """Ground-truth outcome rewards: PPO must move the rewarded rollouts up against the others."""
    model = tiny_llama(seed=0)
    rollouts = random_rollouts(8, seed=6)
    for i, r in enumerate(rollouts):  # half right, half wrong; only the last step is rewarded
        r.step_rewards[:] = [None] * (len(r.step_rewards) - 1) + [1.0 if i % 2 == 0 else 0.0]

    def seq_logprob(r) -> float:
        ids = torch.tensor([r.prompt_ids + r.response_ids])
        with torch.no_grad():
            logp = model(ids).logits[0, :-1].float().log_softmax(-1)
        picked = logp.gather(-1, ids[0, 1:, None])[:, 0][len(r.prompt_ids) - 1 :]
        return float(picked.sum())

    before = [seq_logprob(r) for r in rollouts]
    trainer = StepPPOTrainer(
        model, tiny_tokenizer(), PPOConfig(lr=1e-3, minibatch_size=4, ppo_epochs=4, kl_coef=0.0)
    )
    for _ in range(3):
        trainer.train(rollouts)
    gain = [seq_logprob(r) - b for r, b in zip(rollouts, before, strict=True)]
    right, wrong = gain[0::2], gain[1::2]
    assert sum(right) / len(right) > sum(wrong) / len(wrong) + 0.5
    assert sum(right) / len(right) > 0  # the rewarded paths themselves become likelier


def test_accelerator_single_process_path() -> None:
    from accelerate import Accelerator

    model = with_lora(tiny_llama())
    trainer = StepPPOTrainer(
        model, tiny_tokenizer(), PPOConfig(lr=1e-3, minibatch_size=4), accelerator=Accelerator(cpu=True)
    )
    history = trainer.train(random_rollouts(6, seed=6))
    assert len(history) == 2 * 2 and all_finite(history)


def next_token_logprobs(model: torch.nn.Module, sequences: list[list[int]]) -> torch.Tensor:
    """Mean log-prob of each vocabulary token as the next token, over every position of ``sequences``."""
    with torch.no_grad():
        logits = model(torch.tensor(sequences)).logits.float()
        return torch.log_softmax(logits, -1).mean(dim=(0, 1))


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_rewarding_steps_with_a_token_raises_its_probability(lora: bool) -> None:
    """+1 for steps that contain GOOD, −1 for the others: PPO must make GOOD likelier."""
    g = torch.Generator().manual_seed(11)
    others = [t for t in range(3, VOCAB) if t != GOOD]

    def step(good: bool) -> list[int]:
        toks = [others[int(i)] for i in torch.randint(0, len(others), (3,), generator=g)]
        if good:
            toks[int(torch.randint(0, 3, (1,), generator=g))] = GOOD
        return toks

    rollouts = []
    for i in range(16):
        prompt = torch.randint(3, VOCAB, (4,), generator=g).tolist()
        goods = [(i + k) % 2 == 0 for k in range(2)]
        rollouts.append(StepRollout(prompt, [step(x) for x in goods], [1.0 if x else -1.0 for x in goods]))
    held_out = [torch.randint(3, VOCAB, (10,), generator=g).tolist() for _ in range(16)]

    base = tiny_llama(seed=1)
    model = with_lora(base) if lora else base
    cfg = PPOConfig(lr=3e-3 if lora else 3e-4, minibatch_size=8, ppo_epochs=2, kl_coef=0.01)
    trainer = StepPPOTrainer(model, tiny_tokenizer(), cfg)
    before = next_token_logprobs(model, held_out)
    for _ in range(4):
        trainer.train(rollouts)
    rise = next_token_logprobs(model, held_out) - before
    # GOOD (≈1/64 at the start) must rise clearly, and more than any other token.
    assert rise[GOOD].item() > 0.25, rise[GOOD].item()
    assert int(rise.argmax()) == GOOD, (int(rise.argmax()), rise.max().item(), rise[GOOD].item())


@pytest.mark.slow
def test_two_process_data_parallel_keeps_replicas_identical(tmp_path: Path) -> None:
    """Two CPU processes (gloo DDP): each rank trains on its share, DDP averages the
    gradients, and both ranks end with the same weights.

    Launched with torchrun: here ``accelerate launch --cpu --num_processes 2`` starts ONE
    process (accelerate 1.15's simple launcher); torchrun (what ``accelerate launch
    --multi_gpu`` runs underneath) gives a real MULTI_CPU group."""
    script = tmp_path / "dp.py"
    script.write_text(
        textwrap.dedent(
            f"""
        import sys, torch
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from accelerate import Accelerator
        from test_ppo import tiny_llama, tiny_tokenizer, with_lora, random_rollouts
        from presrm.config import PPOConfig
        from presrm.train.ppo import StepPPOTrainer
        acc = Accelerator(cpu=True)
        model = with_lora(tiny_llama())
        tr = StepPPOTrainer(model, tiny_tokenizer(), PPOConfig(lr=1e-3, minibatch_size=2), accelerator=acc)
        hist = tr.train(random_rollouts(7, seed=0))  # the same list on both ranks; each trains on its share
        flat = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad]
                         + [p.detach().flatten() for p in tr.value_head.parameters()])
        gathered = acc.gather(flat.unsqueeze(0))
        assert acc.num_processes == 2, acc.distributed_type
        if acc.is_main_process:
            # 7 rollouts padded to 8 -> 4 per rank -> 2 minibatches of 2, twice.
            assert len(hist) == 2 * 2, len(hist)
            assert torch.equal(gathered[0], gathered[1]), "replicas diverged"
            print("TOKENS", sum(m["tokens"] for m in hist[:2]))
        # Leave the gloo group together and let it really be destroyed (Dist.finish does the
        # same): a group still owned by a DDP wrapper at interpreter exit aborts the process.
        acc.wait_for_everyone()
        del tr, model
        acc.free_memory()
        acc.end_training()
        """
        )
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=Path(__file__).parents[1],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TOKENS" in proc.stdout
