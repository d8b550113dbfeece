"""PPO update throughput against plain forward+backward of the same tokens, measured in one run.

    python benchmarks/bench_ppo.py            # tiny Llama (full and LoRA), SmolLM2+LoRA if installed
    python benchmarks/bench_ppo.py --no-smollm2 --repeats 5

PPO's cost per batch: one no-grad pass of the policy (old log-probs, values), one of
the reference, then ``ppo_epochs`` × (forward+backward+step) per minibatch. The baseline
does only the forward+backward+step (cross-entropy on the response tokens) for the same
minibatches, the same number of times, so ``overhead`` = PPO time / baseline time shows
what PPO adds. The machine's speed swings within minutes: read the ratio, not the
absolute numbers, and compare only within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import LlamaForCausalLM  # noqa: E402

from presrm.config import PPOConfig
from presrm.model.tiny import tiny_config
from presrm.train.examples import StepRollout
from presrm.train.ppo import StepPPOTrainer
from presrm.train.ppo_batch import collate, response_logprobs


@dataclass
class Case:
    name: str
    make_model: Callable[[], tuple[nn.Module, int]]  # (model, pad id)
    vocab: int
    rollouts: int
    prompt_len: int
    steps: int
    step_len: int
    minibatch: int


def tiny_llama(lora: bool) -> tuple[nn.Module, int]:
    torch.manual_seed(0)
    cfg = tiny_config(64)  # presrm's own tiny architecture
    model: nn.Module = LlamaForCausalLM(cfg)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    return model, 0


def smollm2_lora() -> tuple[nn.Module, int]:
    from presrm.model.adapters import add_lora
    from presrm.model.loading import load_policy

    policy = add_lora(load_policy("smollm2", device="cpu", dtype="float32"))
    pad = policy.tokenizer.pad_token_id
    return policy.model, int(pad if pad is not None else policy.tokenizer.eos_token_id)


def make_rollouts(case: Case, seed: int = 0) -> list[StepRollout]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(case.rollouts):
        prompt = torch.randint(3, case.vocab, (case.prompt_len,), generator=g).tolist()
        steps = [
            torch.randint(3, case.vocab, (case.step_len,), generator=g).tolist() for _ in range(case.steps)
        ]
        out.append(StepRollout(prompt, steps, torch.randn(case.steps, generator=g).tolist()))
    return out


def baseline_updates(
    model: nn.Module, rollouts: list[StepRollout], pad_id: int, minibatch: int, epochs: int
) -> float:
    """Plain forward + cross-entropy on the response tokens + backward + AdamW step, for the
    same minibatches PPO makes; returns the tokens trained."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    batch = collate(rollouts, pad_id)
    tokens = 0.0
    for _ in range(epochs):
        for start in range(0, batch.size, minibatch):
            mb = batch.rows(torch.arange(start, min(start + minibatch, batch.size)))
            t_len = mb.response_ids.shape[1]
            logits = model(
                input_ids=mb.input_ids,
                attention_mask=mb.attention_mask,
                position_ids=mb.position_ids,
                logits_to_keep=t_len + 1,
                use_cache=False,
            ).logits[:, :t_len]
            lp = response_logprobs(logits, mb.response_ids)
            loss = -(lp * mb.response_mask).sum() / mb.response_mask.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            tokens += float(mb.response_mask.sum())
    return tokens


def run_case(case: Case, repeats: int) -> dict[str, float]:
    model, pad_id = case.make_model()
    model.eval()  # PPO runs with dropout off too
    cfg = PPOConfig(minibatch_size=case.minibatch, ppo_epochs=2)
    trainer = StepPPOTrainer(model, None, cfg)
    trainer.pad_id = pad_id
    rollouts = make_rollouts(case)
    # Warm-up both paths once (allocator, kernels), then interleave the timed runs.
    trainer.train(rollouts)
    baseline_updates(model, rollouts, pad_id, case.minibatch, cfg.ppo_epochs)
    ppo_s, base_s, tokens = [], [], 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        history = trainer.train(rollouts)
        ppo_s.append(time.perf_counter() - t0)
        tokens = sum(m["tokens"] for m in history)
        t0 = time.perf_counter()
        base_tokens = baseline_updates(model, rollouts, pad_id, case.minibatch, cfg.ppo_epochs)
        base_s.append(time.perf_counter() - t0)
        assert base_tokens == tokens, (base_tokens, tokens)
    ppo, base = statistics.median(ppo_s), statistics.median(base_s)
    return {
        "tokens": tokens,
        "ppo_s": ppo,
        "base_s": base,
        "ppo_tps": tokens / ppo,
        "base_tps": tokens / base,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-smollm2", action="store_true", help="skip the SmolLM2-135M + LoRA case")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0 = torch's default). 1 keeps the ratio stable on a shared machine:"
        " with 2 threads and other jobs running, thread spinning inflated one side 10x here",
    )
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    cases = [
        Case("tiny llama, full", lambda: tiny_llama(False), 64, 16, 16, 4, 8, 8),
        Case("tiny llama, LoRA", lambda: tiny_llama(True), 64, 16, 16, 4, 8, 8),
    ]
    if not args.no_smollm2:
        try:
            from presrm.model.loading import load_policy  # noqa: F401  (availability check)

            cases.append(Case("SmolLM2-135M, LoRA", smollm2_lora, 49152, 8, 48, 3, 16, 4))
        except ImportError as exc:
            print(f"(SmolLM2 case skipped: {exc})")

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; PPO epochs 2; median of {args.repeats}"
    )
    header = f"{'model':<20} {'tokens':>7} {'PPO s':>8} {'base s':>8} {'PPO tok/s':>10} {'base tok/s':>11} {'overhead':>9}"
    print(header)
    print("-" * len(header))
    for case in cases:
        try:
            r = run_case(case, args.repeats)
        except Exception as exc:  # a missing optional model must not hide the other rows
            print(f"{case.name:<20} skipped: {type(exc).__name__}: {exc}")
            continue
        print(
            f"{case.name:<20} {r['tokens']:>7.0f} {r['ppo_s']:>8.3f} {r['base_s']:>8.3f} "
            f"{r['ppo_tps']:>10.0f} {r['base_tps']:>11.0f} {r['ppo_s'] / r['base_s']:>8.2f}x"
        )


if __name__ == "__main__":
    main()
