"""Judge calls/s at a run's own judge settings, per mode: batched (as the search sends one
round) vs one call at a time, measured in the same run.

    python benchmarks/bench_judge.py [--config examples/default-cpu.toml] [--model default]
        [--modes pairwise,likelihood,pointwise] [--pairs 48]

The judge settings (``max_judge_tokens``, ``check``, ``verdict``, ``batch_size``) come from the
config's ``[judge]`` table (defaults where it sets none: 48 judge tokens), so the figure is what
a run with that config pays; only the mode is varied. Pairwise requests are EFT pairs of the
arith task; pointwise judges each pair's first step. Both sides use the same ModelJudge. The
machine is shared and its speed swings: compare the ratios, measured together.

A second table times the likelihood judge's scoring (``sequence_logprobs``: each distinct prompt
prefilled once, its KV cache shared by its candidate steps) against scoring every (prompt, step)
as one whole sequence, batched the same way, on two workloads: the EFT pairs (two steps per
prefix) and a search round (``--width`` sampled candidates for the last step of ``--n-ops``
problems after greedy earlier steps, where the default model's samples differ; every pair of
distinct ones in both orders, as the search sends them).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from presrm.config import load_config
from presrm.model.generation import generate_steps
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.model.scoring import sequence_logprobs
from presrm.search.judge import JudgeResult, ModelJudge, PairRequest, PointRequest
from presrm.steps import render_prefix
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model
from presrm.train.eft import build_eft_pairs

ROOT = Path(__file__).resolve().parents[1]


def search_round(policy: Policy, task_questions: list[str], width: int, depth: int) -> list[PairRequest]:
    """Candidates for step ``depth + 1`` after ``depth`` greedy steps, sampled per question; every
    pair of distinct ones in both orders."""
    fmt = policy.step_format
    steps: list[list[str]] = [[] for _ in task_questions]

    def prefixes() -> list[str]:
        return [
            render_prefix(policy.solution_prompt(q), s, fmt)
            for q, s in zip(task_questions, steps, strict=True)
        ]

    for _ in range(depth):
        for s, out in zip(steps, generate_steps(policy, prefixes(), 1, temperature=0.0), strict=True):
            s.append(out[0].text)
    samples = generate_steps(policy, prefixes(), width, temperature=1.0, max_new_tokens=48, seed=0)
    requests = []
    for q, s, cands in zip(task_questions, steps, samples, strict=True):
        distinct = list(dict.fromkeys(c.text for c in cands))
        for i, a in enumerate(distinct):
            for b in distinct[i + 1 :]:
                requests += [PairRequest(q, tuple(s), a, b), PairRequest(q, tuple(s), b, a)]
    return requests


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "default-cpu.toml")
    parser.add_argument("--model", default=None, help="default: the config's model")
    parser.add_argument("--modes", default="pairwise,likelihood,pointwise")
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--problems", type=int, default=32, help="problems in the search-round workload")
    parser.add_argument("--width", type=int, default=6, help="candidate steps per problem in it")
    parser.add_argument("--n-ops", type=int, default=3, help="arith operations of its problems")
    args = parser.parse_args()
    config = load_config(args.config)
    model = args.model or config.model
    ensure_model(model)
    policy = load_policy(model)
    task = load_task("arith")
    pairs = build_eft_pairs(task, task.sample(args.pairs, "eval", seed=1), random.Random(0), args.pairs)
    pair_requests = [PairRequest(p.question, p.previous_steps, p.step_a, p.step_b) for p in pairs]
    point_requests = [PointRequest(p.question, p.previous_steps, p.step_a) for p in pairs]
    js = config.judge
    print(
        f"model {model}, judge settings of {args.config.name}: max_judge_tokens {js.max_judge_tokens},"
        f" check {js.check}, verdict {js.verdict}, batch_size {js.batch_size}; {len(pairs)} calls per mode"
    )
    print(
        f"{'mode':<12}{'one at a time calls/s':>23}{'batched calls/s':>17}{'ratio':>8}{'same verdicts':>15}"
    )
    for mode in args.modes.split(","):
        judge = ModelJudge(policy, js.model_copy(update={"mode": mode}))

        def call(batch: list[int], judge: ModelJudge = judge, mode: str = mode) -> list[JudgeResult]:
            if mode == "pointwise":
                return judge.pointwise([point_requests[i] for i in batch])
            return judge.pairwise([pair_requests[i] for i in batch])

        call([0, 1])  # warm-up (allocations, kernels)
        start = time.perf_counter()
        single = [call([i])[0] for i in range(len(pairs))]
        t_single = time.perf_counter() - start
        start = time.perf_counter()
        batched = call(list(range(len(pairs))))
        t_batched = time.perf_counter() - start
        same = sum(a.verdict == b.verdict for a, b in zip(single, batched, strict=True))
        n = len(pairs)
        print(
            f"{mode:<12}{n / t_single:>23.2f}{n / t_batched:>17.2f}{t_single / t_batched:>7.2f}x"
            f"{same:>10}/{n}"
        )
    print(
        f"\nlikelihood scoring ({js.batch_size} rows per batch)   rows  prompts"
        f"  whole sequences rows/s  shared prefix rows/s  ratio  max |diff|"
    )
    harder = load_task("arith", {"n_ops": args.n_ops})  # where the policy's samples differ
    questions = [p.question for p in harder.sample(args.problems, "eval", seed=2)]
    for name, requests in (
        ("EFT pairs", pair_requests),
        ("search round", search_round(policy, questions, args.width, args.n_ops - 1)),
    ):
        prompts, conts, _ = ModelJudge(policy, js.model_copy(update={"mode": "likelihood"})).likelihood_rows(
            requests
        )
        sequence_logprobs(
            policy, prompts[:4], conts[:4], batch_size=js.batch_size, share_prefix=False
        )  # warm-up
        start = time.perf_counter()
        base = sequence_logprobs(policy, prompts, conts, batch_size=js.batch_size, share_prefix=False)
        t_base = time.perf_counter() - start
        start = time.perf_counter()
        shared = sequence_logprobs(policy, prompts, conts, batch_size=js.batch_size)
        t_shared = time.perf_counter() - start
        diff = max(abs(a - b) for a, b in zip(base, shared, strict=True))
        n = len(prompts)
        print(
            f"{name:<34}{n:>6}{len(set(prompts)):>9}{n / t_base:>24.1f}{n / t_shared:>22.1f}"
            f"{t_base / t_shared:>6.2f}x{diff:>12.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
