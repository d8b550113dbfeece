"""SmolLM2's peak memory and tokens/s for loading, search, judging, step-DPO and PPO, before and
after the memory/precision settings, each case in its own process and all in one run.

    python benchmarks/bench_chat_memory.py                 # every case, SmolLM2 on CPU
    python benchmarks/bench_chat_memory.py --cases ppo_unchunked,ppo_chunked --device cuda

Each case runs in a fresh subprocess (so peaks do not carry over), loads the model, then measures
one stage: its peak extra anonymous RSS over the process's memory after loading (on CUDA also
``torch.cuda.max_memory_allocated``), and its tokens/s. "before" cases reproduce the old code paths
in the same run: a float32 load then cast, PPO's whole-minibatch logits (``logprob_chunk = 0``),
no activation checkpointing, the larger generation / judge batches. The machine is shared, so
read the ratios between cases measured together, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402


class Peak:
    """Samples RssAnon in a thread; ``extra`` = the peak above the level at ``start``."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def anon() -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> Peak:
        self.base = self.peak = self.anon()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.cuda_base = torch.cuda.memory_allocated()

        def run() -> None:
            while not self._stop.is_set():
                self.peak = max(self.peak, self.anon())
                time.sleep(0.002)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, self.anon())

    def result(self) -> dict[str, float]:
        out = {"peak_extra_rss_mib": (self.peak - self.base) / 2**20}
        if self.device.type == "cuda":
            out["cuda_peak_extra_mib"] = (torch.cuda.max_memory_allocated() - self.cuda_base) / 2**20
        return out


# ---------------------------------------------------------------------------------------- cases
def _policy(args: argparse.Namespace, lora: bool = False) -> Any:
    from presrm.model.adapters import add_lora
    from presrm.model.loading import load_policy

    policy = load_policy("smollm2", device=args.device, dtype=args.dtype)
    return add_lora(policy, seed=0) if lora else policy


def _problems(n: int) -> list[Any]:
    from presrm.tasks import load_task

    return load_task("arith", {"n_ops": 3}).sample(n, "train", seed=0)


def case_load(args: argparse.Namespace, before: bool) -> dict[str, Any]:
    """Load a bf16 model directory as bf16: float32 then cast (before) or straight (after)."""
    from transformers import AutoModelForCausalLM

    from presrm.model.loading import load_policy

    device = torch.device(args.device)
    with Peak(device) as peak:
        t0 = time.perf_counter()
        if before:
            model = AutoModelForCausalLM.from_pretrained(args.bf16_dir, dtype=torch.float32)
            model.to(device=device, dtype=torch.bfloat16)
        else:
            model = load_policy(args.bf16_dir, device=args.device, dtype="bfloat16").model
        seconds = time.perf_counter() - t0
    n = sum(p.numel() for p in model.parameters())
    return {**peak.result(), "seconds": seconds, "weights_mib": n * 2 / 2**20}


def case_search(args: argparse.Namespace, max_rows: int) -> dict[str, Any]:
    from presrm.model.generation import generate_steps

    policy = _policy(args)
    prefixes = [policy.solution_prompt(p.question) + "Step 1:" for p in _problems(8)]
    generate_steps(policy, prefixes[:1], 1, max_new_tokens=2, seed=0)  # kernels, newline table
    with Peak(policy.device) as peak:
        t0 = time.perf_counter()
        out = generate_steps(policy, prefixes, 4, max_new_tokens=32, seed=1, max_rows=max_rows)
        seconds = time.perf_counter() - t0
    tokens = sum(s.n_tokens for row in out for s in row)
    return {**peak.result(), "seconds": seconds, "tokens": tokens, "tok_s": tokens / seconds}


def case_judge(args: argparse.Namespace, batch_size: int) -> dict[str, Any]:
    from presrm.config import JudgeConfig
    from presrm.search.judge import ModelJudge, PairRequest

    policy = _policy(args)
    requests = []
    for p in _problems(12):
        good = f"Step 1: {p.steps[0]}"
        bad = f"Step 1: {p.steps[0]} + 1"
        requests.append(PairRequest(p.question, (), good, bad))
    judge = ModelJudge(policy, JudgeConfig(mode="pairwise", max_judge_tokens=32, batch_size=batch_size))
    judge.pairwise(requests[:1])
    with Peak(policy.device) as peak:
        t0 = time.perf_counter()
        results = judge.pairwise(requests)
        seconds = time.perf_counter() - t0
    tokens = sum(len(policy.tokenizer(r.raw_output)["input_ids"]) for r in results)
    return {**peak.result(), "seconds": seconds, "calls": len(results), "tok_s": tokens / seconds}


def _step_pairs(policy: Any, n: int) -> list[Any]:
    from presrm.steps import step_header
    from presrm.train.examples import StepPair

    pairs = []
    for p in _problems(n):
        prompt = policy.solution_prompt(p.question) + step_header(1)
        pairs.append(StepPair(prompt, f" {p.steps[0]}", f" {p.steps[-1]} wrong", False))
    return pairs


def case_dpo(args: argparse.Namespace, checkpointing: bool) -> dict[str, Any]:
    from presrm.config import StepDPOConfig
    from presrm.train.dpo import tokenize_step_pairs, train_step_dpo

    policy = _policy(args, lora=True)
    pairs = _step_pairs(policy, 16)
    rows = tokenize_step_pairs(policy, pairs)
    tokens = sum(2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows)
    cfg = StepDPOConfig(batch_size=8, gradient_checkpointing=checkpointing)
    with Peak(policy.device) as peak:
        t0 = time.perf_counter()
        train_step_dpo(policy, pairs, cfg, seed=0)
        seconds = time.perf_counter() - t0
    return {**peak.result(), "seconds": seconds, "tok_s": tokens / seconds}


def case_ppo(args: argparse.Namespace, chunk: int, checkpointing: bool) -> dict[str, Any]:
    from presrm.config import PPOConfig
    from presrm.model.encoding import encode_continuations, encode_prompts
    from presrm.train.examples import StepRollout
    from presrm.train.ppo import StepPPOTrainer

    policy = _policy(args, lora=True)
    rollouts = []
    for k, p in enumerate(_problems(16)):
        prompt = encode_prompts(policy, [policy.solution_prompt(p.question)])[0]
        # The reference steps, repeated to ~100 response tokens: long enough for the logits to matter.
        texts = [f"Step {i + 1}: {p.steps[i % len(p.steps)]}\n" for i in range(8)]
        steps = encode_continuations(policy, texts)
        rollouts.append(StepRollout(prompt, steps, [float((k + i) % 3) / 2 for i in range(len(steps))]))
    cfg = PPOConfig(minibatch_size=8, ppo_epochs=1, logprob_chunk=chunk, gradient_checkpointing=checkpointing)
    trainer = StepPPOTrainer(policy.model, policy.tokenizer, cfg)
    with Peak(policy.device) as peak:
        t0 = time.perf_counter()
        history = trainer.train(rollouts)
        seconds = time.perf_counter() - t0
    trainer.release()
    tokens = sum(len(r.response_ids) for r in rollouts)
    return {
        **peak.result(),
        "seconds": seconds,
        "response_tokens": tokens,
        "tok_s": tokens / seconds,
        "kl_first": history[0]["kl"],
    }


CASES: dict[str, tuple[str, str, Callable[[argparse.Namespace], dict[str, Any]]]] = {
    # name: (stage, before/after, run)
    "load_fp32_then_cast": ("load bf16 dir as bf16", "before", lambda a: case_load(a, True)),
    "load_direct": ("load bf16 dir as bf16", "after", lambda a: case_load(a, False)),
    "search_rows64": ("search sampling, 8 prefixes x w4", "max_rows 64", lambda a: case_search(a, 64)),
    "search_rows8": ("search sampling, 8 prefixes x w4", "max_rows 8", lambda a: case_search(a, 8)),
    "judge_b32": ("pairwise judge, 12 calls", "batch_size 32", lambda a: case_judge(a, 32)),
    "judge_b4": ("pairwise judge, 12 calls", "batch_size 4", lambda a: case_judge(a, 4)),
    "dpo": ("step-DPO, 16 pairs, LoRA", "before", lambda a: case_dpo(a, False)),
    "dpo_ckpt": ("step-DPO, 16 pairs, LoRA", "checkpointing", lambda a: case_dpo(a, True)),
    "ppo_unchunked": ("PPO, 16 rollouts, LoRA", "before", lambda a: case_ppo(a, 0, False)),
    "ppo_chunked": ("PPO, 16 rollouts, LoRA", "chunk 256", lambda a: case_ppo(a, 256, False)),
    "ppo_chunked_ckpt": ("PPO, 16 rollouts, LoRA", "chunk 256 + ckpt", lambda a: case_ppo(a, 256, True)),
}


def _bf16_copy(device: str) -> str:
    """A bf16 copy of SmolLM2 as a model directory (how bf16 hub checkpoints are stored)."""
    from presrm.model.cache import cache_dir
    from presrm.model.loading import load_policy

    target = cache_dir() / "bench" / "smollm2-bf16"
    if not (target / "config.json").is_file():
        policy = load_policy("smollm2", device="cpu", dtype="bfloat16")
        policy.model.save_pretrained(target)
        policy.tokenizer.save_pretrained(target)
    return str(target)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="auto", help="dtype of the stage cases (loading is always bf16)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="", help="write the results as JSON here too")
    ap.add_argument("--case", default="", help=argparse.SUPPRESS)  # internal: run one case
    ap.add_argument("--bf16-dir", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.case:
        print("RESULT " + json.dumps(CASES[args.case][2](args)), flush=True)
        return
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        sys.exit(f"unknown case(s): {', '.join(unknown)} (known: {', '.join(CASES)})")
    bf16_dir = _bf16_copy(args.device) if any(n.startswith("load") for n in names) else ""
    results: dict[str, Any] = {}
    for name in names:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--case",
            name,
            "--device",
            args.device,
            "--dtype",
            args.dtype,
            "--threads",
            str(args.threads),
            "--bf16-dir",
            bf16_dir,
        ]
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=os.environ.copy())
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(f"{name}: failed\n{proc.stderr[-1500:]}", file=sys.stderr)
            continue
        results[name] = json.loads(lines[-1][len("RESULT ") :])
        stage, variant, _ = CASES[name]
        r = results[name]
        speed = f"{r['tok_s']:8.1f} tok/s" if "tok_s" in r else f"{r['seconds']:8.2f} s   "
        cuda = f"  cuda {r['cuda_peak_extra_mib']:7.1f} MiB" if "cuda_peak_extra_mib" in r else ""
        print(
            f"{stage:<34} {variant:<18} peak +{r['peak_extra_rss_mib']:7.1f} MiB  {speed}{cuda}", flush=True
        )
    if args.out:
        Path(args.out).write_text(
            json.dumps({"device": args.device, "dtype": args.dtype, "results": results}, indent=2) + "\n"
        )


if __name__ == "__main__":
    main()
