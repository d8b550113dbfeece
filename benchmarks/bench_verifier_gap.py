"""The verifier-gap table: best-of-k by each judge mode against greedy and the oracles.

    python benchmarks/bench_verifier_gap.py [--model default | --checkpoint DIR | --run RUN.duckdb --iteration N]
        [--n-ops 2] [--problems 300] [--k 8] [--temperature 0.8] [--modes likelihood,pointwise] [--threads 1]

Baseline in the same run: greedy decoding of the same model on the same problems; every selector's
gain is paired on those problems (95 % interval). Also each judge's accuracy on the model's own
sibling steps (one right, one wrong by the step checker). A setting can show a self-rewarding gain
only where some label-free selector beats greedy here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from presrm.eval.gap_run import run_gap
from presrm.eval.verifier_gap import JUDGE_MODES, format_table, verifier_gap
from presrm.model.loading import load_checkpoint, load_policy
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--checkpoint", help="a presrm checkpoint directory instead of --model")
    parser.add_argument("--run", help="a run file: its task, seed and M<--iteration>'s checkpoint")
    parser.add_argument("--iteration", type=int, default=0)
    parser.add_argument("--n-ops", type=int, default=2)
    parser.add_argument("--problems", type=int, default=300)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--modes", default="likelihood,pointwise")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    modes = [m for m in args.modes.split(",") if m]
    if any(m not in JUDGE_MODES for m in modes):
        parser.error(f"--modes: choose from {', '.join(JUDGE_MODES)}")
    start = time.perf_counter()
    if args.run:
        table = run_gap(
            args.run,
            args.iteration,
            problems=args.problems,
            k=args.k,
            temperature=args.temperature,
            modes=modes,
        )
        where = f"{args.run} M{args.iteration}"
    else:
        if args.checkpoint:
            policy = load_checkpoint(args.checkpoint, device="cpu")
        else:
            ensure_model(args.model)
            policy = load_policy(args.model, device="cpu")
        task = load_task("arith", {"n_ops": args.n_ops, "max_operand": 20, "ops": "+-"})
        problems = task.sample(args.problems, "eval", seed=12345)
        table = verifier_gap(
            policy,
            task,
            problems,
            k=args.k,
            temperature=args.temperature,
            max_steps=args.max_steps,
            modes=modes,
            check=False,
        )
        where = f"{args.checkpoint or args.model}, arith n_ops={args.n_ops}"
    print(f"{where}: {args.problems} held-out problems, {time.perf_counter() - start:.0f} s")
    print("\n".join(format_table(table)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
