"""PPO's chunked log-probs, activation checkpointing, value head persistence and config reach."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
from test_ppo import random_rollouts, snapshot, tiny_llama, tiny_tokenizer, trained_adapter

from presrm.config import PPOConfig, load_config
from presrm.errors import ModelError
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.train.logprobs import chunked_token_stats, lm_response_stats, output_head
from presrm.train.ppo import StepPPOTrainer
from presrm.train.ppo_batch import collate
from presrm.train.ppo_stage import train_ppo
from presrm.train.value_head import VALUE_HEAD_FILE, ValueHead, load_value_head, save_value_head


def batch_args(model: torch.nn.Module, n: int = 5, seed: int = 3) -> tuple:
    b = collate(random_rollouts(n, seed=seed), 0)
    return b.input_ids, b.attention_mask, b.position_ids, b.response_ids, b.response_mask


@pytest.mark.parametrize("chunk", [1, 4, 7, 10_000])
def test_chunked_logprobs_entropies_and_gradients_equal_the_unchunked(chunk: int) -> None:
    """The LM head applied chunk by chunk (checkpointed) gives the numbers and the gradients of
    one log-softmax over the whole minibatch's logits."""
    model = tiny_llama(seed=2)
    args = batch_args(model)
    mask = args[-1]
    grads = []
    outs = []
    for c in (0, chunk):
        model.zero_grad(set_to_none=True)
        lp, ent, _ = lm_response_stats(model, *args, c, check_head=c > 0)
        ((lp * mask).sum() + 0.3 * (ent * mask).sum()).backward()
        outs.append((lp.detach(), ent.detach()))
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    (lp0, ent0), (lp1, ent1) = outs
    assert mask.sum() > 10 and (lp0 * mask).abs().sum() > 1.0
    assert torch.allclose(lp0, lp1, atol=1e-5) and torch.allclose(ent0, ent1, atol=1e-5)
    assert set(grads[0]) == set(grads[1]) and "lm_head.weight" in grads[0]
    for name, g in grads[0].items():
        assert torch.allclose(g, grads[1][name], atol=1e-5, rtol=1e-4), name


def test_chunked_stats_without_grad_and_on_no_tokens() -> None:
    model = tiny_llama()
    head = output_head(model)
    hidden = torch.randn(9, model.config.hidden_size)
    ids = torch.randint(0, 64, (9,))
    with torch.no_grad():
        lp, ent = chunked_token_stats(hidden, ids, head, 2)
        full = torch.log_softmax(head(hidden).float(), -1)
    assert torch.allclose(lp, full.gather(-1, ids[:, None])[:, 0], atol=1e-6)
    assert torch.allclose(ent, -(full.exp() * full).sum(-1), atol=1e-5)
    empty_lp, _ = chunked_token_stats(hidden[:0], ids[:0], head, 2)
    assert empty_lp.shape == (0,)


def test_a_model_with_soft_capped_logits_is_refused_when_chunked() -> None:
    """Gemma 2 soft-caps its logits, so its LM head alone gives other numbers: refuse, naming the key."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(0)
    cfg = Gemma2Config(
        vocab_size=64,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        final_logit_softcapping=2.0,
    )
    model = Gemma2ForCausalLM(cfg).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(50.0)  # logits far beyond the cap
    args = batch_args(model)
    with pytest.raises(ValueError, match="train.ppo.logprob_chunk = 0"):
        lm_response_stats(model, *args, 4, check_head=True)
    lm_response_stats(model, *args, 0)  # the unchunked path uses the model's own logits


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_ppo_trains_the_same_with_chunked_logprobs_and_with_checkpointing(lora: bool) -> None:
    """Three trainers from the same start: whole-minibatch logits, chunked LM head, and chunked
    with activation checkpointing end with the same weights and metrics."""
    rollouts = random_rollouts(8, seed=5)
    results = []
    for chunk, ckpt in ((0, False), (3, False), (3, True)):
        model = (trained_adapter(seed=1) if lora else tiny_llama(seed=1)).eval()
        cfg = PPOConfig(lr=1e-3, minibatch_size=4, logprob_chunk=chunk, gradient_checkpointing=ckpt)
        start = snapshot(model)
        trainer = StepPPOTrainer(model, tiny_tokenizer(), cfg)
        history = trainer.train(rollouts)
        trainer.release()
        assert not model.training  # back in eval mode (checkpointing switched it to train)
        results.append((snapshot(model), snapshot(trainer.value_head), history))
    ref_w, ref_v, ref_h = results[0]
    for weights, head, history in results[1:]:
        for name, value in ref_w.items():
            assert torch.allclose(value, weights[name], atol=2e-5), name
        for name, value in ref_v.items():
            assert torch.allclose(value, head[name], atol=2e-5), name
        for a, b in zip(ref_h, history, strict=True):
            for key in ("policy_loss", "value_loss", "kl", "entropy"):
                assert math.isclose(a[key], b[key], rel_tol=1e-3, abs_tol=1e-5), key
    assert any(not torch.allclose(v, start[k], atol=1e-4) for k, v in ref_w.items())  # it trained


def test_value_head_round_trips_through_a_checkpoint_directory(tmp_path: Path) -> None:
    head = ValueHead(32, seed=4)
    with torch.no_grad():
        head.linear.bias.fill_(0.25)
    assert load_value_head(tmp_path) is None  # a checkpoint without one (warm-up, step-DPO)
    save_value_head(head, tmp_path)
    loaded = load_value_head(tmp_path)
    assert loaded is not None
    x = torch.randn(2, 3, 32)
    assert torch.equal(loaded(x), head(x))
    (tmp_path / VALUE_HEAD_FILE).write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="not a value head"):
        load_value_head(tmp_path)


def test_train_ppo_goes_on_from_the_given_value_head() -> None:
    """The next iteration's trainer starts from the previous head (its values, its weights), and
    the head it returns is that head trained further."""
    model = trained_adapter(seed=3)
    rollouts = random_rollouts(6, seed=7)
    first, head = train_ppo(
        Policy(model=model, tokenizer=tiny_tokenizer(), spec="test", device=torch.device("cpu"), chat=False),
        rollouts,
        PPOConfig(lr=1e-3, minibatch_size=3),
        seed=0,
        value_head=None,
        log=lambda step, metrics: None,
    )
    assert first and not torch.allclose(head.linear.weight, ValueHead(head.linear.in_features).linear.weight)
    trained = copy.deepcopy(head)
    trainer = StepPPOTrainer(model, tiny_tokenizer(), PPOConfig(minibatch_size=3), value_head=head)
    assert trainer.value_head is head and torch.equal(head.linear.weight, trained.linear.weight)
    batch = collate(rollouts, trainer.pad_id)
    trainer._prepare(batch)
    trainer.release()
    fresh = StepPPOTrainer(model, tiny_tokenizer(), PPOConfig(minibatch_size=3), seed=0)
    fresh_batch = collate(rollouts, fresh.pad_id)
    fresh._prepare(fresh_batch)
    fresh.release()
    # The values PPO's advantages start from are the trained head's, not a new head's.
    assert not torch.allclose(batch.extra["old_values"], fresh_batch.extra["old_values"], atol=1e-4)


def test_every_ppo_setting_is_reachable_from_the_run_config(tmp_path: Path) -> None:
    """Each PPOConfig field, set to a non-default value with --set and in a [train.ppo] table."""
    changed = {
        "lr": 2e-5,
        "value_lr": 3e-4,
        "weight_decay": 0.01,
        "kl_coef": 0.2,
        "kl_kind": "k3",
        "gamma": 0.9,
        "lam": 0.8,
        "clip": 0.3,
        "vf_clip": 0.4,
        "vf_coef": 0.5,
        "ent_coef": 0.01,
        "ppo_epochs": 3,
        "minibatch_size": 2,
        "whiten_advantages": False,
        "reward_norm": "none",
        "max_grad_norm": 0.5,
        "logprob_chunk": 64,
        "gradient_checkpointing": True,
    }
    assert set(changed) == set(PPOConfig.model_fields)
    default = PPOConfig()
    assert all(getattr(default, k) != v for k, v in changed.items())

    def literal(v: object) -> str:
        return f'"{v}"' if isinstance(v, str) else str(v).lower() if isinstance(v, bool) else repr(v)

    by_set = load_config(None, [f"train.ppo.{k}={literal(v)}" for k, v in changed.items()]).train.ppo
    toml = tmp_path / "run.toml"
    toml.write_text("[train.ppo]\n" + "".join(f"{k} = {literal(v)}\n" for k, v in changed.items()))
    by_file = load_config(toml).train.ppo
    for k, v in changed.items():
        assert getattr(by_set, k) == v and getattr(by_file, k) == v, k
    trainer = StepPPOTrainer(tiny_llama(), tiny_tokenizer(), by_file)
    assert trainer.config == by_file


def test_dtype_and_batch_sizes_come_from_the_config() -> None:
    cfg = load_config(None, ["dtype=bfloat16", "sampling.max_rows=8", "judge.batch_size=4"])
    assert (cfg.dtype, cfg.sampling.max_rows, cfg.judge.batch_size) == ("bfloat16", 8, 4)
    from presrm.search.judge import ModelJudge

    policy = load_policy("tiny", dtype=cfg.dtype)
    assert next(policy.model.parameters()).dtype == torch.bfloat16
    assert ModelJudge(policy, cfg.judge).batch_size == 4


def test_ppo_iterations_save_and_resume_the_value_head(tmp_path: Path) -> None:
    """Two PPO iterations on the tiny model: each checkpoint holds its value head and only the
    trained adapter (no reference copy); a resumed loop gets M1's head back with M1."""
    from test_loop import SMALL, longer_step_judge

    from presrm.model.loading import load_checkpoint
    from presrm.run.loop import Loop
    from presrm.run.plan import checkpoint_dir
    from presrm.store.writer import RunStore

    cfg = load_config(
        None, [*SMALL, "algo=ppo", "iterations=2", "problems=2", f"out={str(tmp_path / 'run.duckdb')!r}"]
    )
    store = RunStore.create(cfg.out, cfg)
    loop = Loop(store, judge_factory=longer_step_judge)
    loop.run()
    heads = [load_value_head(checkpoint_dir(store, k)) for k in (1, 2)]
    assert heads[0] is not None and heads[1] is not None
    assert loop.value_head is not None and torch.equal(loop.value_head.linear.weight, heads[1].linear.weight)
    assert not torch.equal(heads[0].linear.weight, heads[1].linear.weight)  # iteration 2 trained it
    fresh = ValueHead(heads[0].linear.in_features, seed=cfg.seed + 1)
    assert not torch.equal(heads[0].linear.weight, fresh.linear.weight)
    m2 = load_checkpoint(checkpoint_dir(store, 2))
    assert list(m2.model.peft_config) == ["default"]
    assert not list(checkpoint_dir(store, 2).glob("ppo_ref*"))

    resumed = Loop(RunStore.open(store.path), judge_factory=longer_step_judge)
    resumed._ensure_model(1)
    assert resumed.value_head is not None
    assert torch.equal(resumed.value_head.linear.weight, heads[0].linear.weight)
