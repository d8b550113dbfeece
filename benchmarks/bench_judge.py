"""Judge calls/s at a run's own judge settings, per mode: batched (as the search sends one
round) vs one call at a time, measured in the same run.

    python benchmarks/bench_judge.py [--config examples/default-cpu.toml] [--model default]
        [--modes pairwise,likelihood,pointwise] [--pairs 48]

The judge settings (``max_judge_tokens``, ``check``, ``verdict``, ``batch_size``) come from the
config's ``[judge]`` table (defaults where it sets none: 48 judge tokens), so the figure is what
a run with that config pays; only the mode is varied. Pairwise requests are EFT pairs of the
arith task; pointwise judges each pair's first step. Both sides use the same ModelJudge. The
machine is shared and its speed swings: compare the ratios, measured together.
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
from presrm.model.loading import load_policy
from presrm.search.judge import JudgeResult, ModelJudge, PairRequest, PointRequest
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model
from presrm.train.eft import build_eft_pairs

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, default=ROOT / "examples" / "default-cpu.toml")
    parser.add_argument("--model", default=None, help="default: the config's model")
    parser.add_argument("--modes", default="pairwise,likelihood,pointwise")
    parser.add_argument("--pairs", type=int, default=48)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
