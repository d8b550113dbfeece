"""Judge calls/s: batched pairwise judging vs one call at a time, measured in the same run.

    python benchmarks/bench_judge.py [--model default|smollm2|tiny] [--pairs 48]

Target (issue 4): batched >= 3x one-at-a-time. Both sides judge the same requests with
the same ModelJudge (greedy check + verdict, then P(A)/P(B)); the batched side sends them
all in one call, as the search does for one round.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from presrm.config import JudgeConfig
from presrm.model.loading import load_policy
from presrm.search.judge import ModelJudge, PairRequest
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model
from presrm.train.eft import build_eft_pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--pairs", type=int, default=48)
    parser.add_argument("--max-judge-tokens", type=int, default=24)
    parser.add_argument("--mode", choices=["pairwise", "likelihood"], default="pairwise")
    args = parser.parse_args()
    ensure_model(args.model)
    policy = load_policy(args.model)
    task = load_task("arith")
    pairs = build_eft_pairs(task, task.sample(args.pairs, "eval", seed=1), random.Random(0), args.pairs)
    requests = [PairRequest(p.question, p.previous_steps, p.step_a, p.step_b) for p in pairs]
    judge = ModelJudge(policy, JudgeConfig(mode=args.mode, max_judge_tokens=args.max_judge_tokens))
    judge.pairwise(requests[:2])  # warm-up (allocations, kernels)

    start = time.perf_counter()
    single = [judge.pairwise([r])[0] for r in requests]
    t_single = time.perf_counter() - start
    start = time.perf_counter()
    batched = judge.pairwise(requests)
    t_batched = time.perf_counter() - start

    same = sum(a.verdict == b.verdict for a, b in zip(single, batched, strict=True))
    print(
        f"model {args.model}, {len(requests)} {args.mode} judge calls, <= {args.max_judge_tokens} tokens each"
    )
    print(f"{'mode':<16}{'seconds':>10}{'calls/s':>10}")
    print(f"{'one at a time':<16}{t_single:>10.2f}{len(requests) / t_single:>10.2f}")
    print(f"{'batched':<16}{t_batched:>10.2f}{len(requests) / t_batched:>10.2f}")
    print(f"ratio batched/one-at-a-time: {t_single / t_batched:.2f}x  (target >= 3x)")
    print(f"same verdict both ways: {same}/{len(requests)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
