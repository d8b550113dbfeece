"""The check judge against greedy decoding of the same model, on the same held-out problems.

    python benchmarks/bench_check_judge.py [--model default | --checkpoint DIR] [--n-ops 3]
        [--problems 1000] [--widths 3,6] [--temperature 0.5] [--threads 2]

Baseline in the same run: greedy step-by-step decoding. For each width w, the step search with the
greedy step and w - 1 sampled candidates, the greedy step kept unless another passes a larger share
of its written checks: its accuracy, the paired gain over greedy (95 % interval, with the problems
it alone solves and the ones it alone loses), the step AUROC of the check share against the task's
step checker (every candidate), the solution AUROC of the minimum score along the chosen path
against final correctness (the run's ``auroc_min``), and wall time as a multiple of greedy's.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from presrm.intervals import paired_difference, wilson_interval
from presrm.metrics import auroc
from presrm.model.loading import load_checkpoint, load_policy
from presrm.search.check_judge import CheckJudge
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--checkpoint", help="a presrm checkpoint directory instead of --model")
    parser.add_argument("--n-ops", type=int, default=3)
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--widths", default="3,6")
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-step-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=12345, help="seed of the held-out problems")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.checkpoint:
        policy = load_checkpoint(args.checkpoint)
        where = args.checkpoint
    else:
        ensure_model(args.model)
        policy = load_policy(args.model)
        where = args.model
    task = load_task("arith", {"n_ops": args.n_ops})
    problems = task.sample(args.problems, "eval", seed=args.seed)
    started = time.perf_counter()
    plain = SearchSettings(
        width=1, max_steps=args.max_steps, temperature=0.0, max_step_tokens=args.max_step_tokens
    )
    greedy = [t.correct for t in search(policy, None, task, problems, plain, LocalIds())]
    greedy_s = time.perf_counter() - started
    acc = wilson_interval(sum(greedy), len(greedy))
    assert acc is not None
    print(f"{where}, arith n_ops={args.n_ops}, {len(problems)} held-out problems (seed {args.seed})")
    print(f"greedy: {_pct(acc.estimate)} [{_pct(acc.low)}, {_pct(acc.high)}]  ({greedy_s:.0f} s)\n")
    print("| width | T | accuracy [95 %] | − greedy, paired [95 %] | only search / only greedy"
          " | step AUROC | auroc_min | time × greedy |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    judge = CheckJudge(policy)
    for width in [int(x) for x in args.widths.split(",") if x]:
        settings = SearchSettings(
            width=width,
            max_steps=args.max_steps,
            temperature=args.temperature,
            max_step_tokens=args.max_step_tokens,
            greedy_candidate=True,
            switch_margin=0.0,
        )
        t0 = time.perf_counter()
        trees = search(policy, judge, task, problems, settings, LocalIds())
        seconds = time.perf_counter() - t0
        right = [t.correct for t in trees]
        ci = wilson_interval(sum(right), len(right))
        gain = paired_difference(right, greedy)
        assert ci is not None and gain is not None
        only_search = sum(r and not g for r, g in zip(right, greedy, strict=True))
        only_greedy = sum(g and not r for r, g in zip(right, greedy, strict=True))
        nodes = [n for t in trees for n in t.nodes if n.step_check is not None and n.self_score is not None]
        step_auc = auroc([n.self_score or 0.0 for n in nodes], [bool(n.step_check) for n in nodes])
        mins = [min((n.self_score for n in t.path if n.self_score is not None), default=1.0) for t in trees]
        sol_auc = auroc(mins, right)
        print(
            f"| {width} | {args.temperature} | {_pct(ci.estimate)} [{_pct(ci.low)}, {_pct(ci.high)}]"
            f" | {100 * gain.estimate:+.1f} [{100 * gain.low:+.1f}, {100 * gain.high:+.1f}]"
            f" | {only_search} / {only_greedy} | {step_auc or float('nan'):.3f} | {sol_auc or float('nan'):.3f}"
            f" | {seconds / greedy_s:.1f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
