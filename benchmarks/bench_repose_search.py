"""Greedy decoding against the step search with the re-posing judge, on held-out arith problems.

    python benchmarks/bench_repose_search.py [--n-ops 4] [--problems 150] [--wordings 2] [--no-propose]
        [--span step] [--inverse] [--checkpoint DIR]

Prints greedy accuracy, the search's accuracy and its paired gain (95 % intervals), and how many of
the search's solutions passed every check (every chosen step accepted, an answer at the end) with
the share of those that are right: the precision a self-training round would train on, and
``auroc_min``, the AUROC of each search solution's lowest graded step score against its final
correctness, computed from the same ``evals`` rows a run stores (rows with no judged step are left
out, as ``presrm eval`` leaves them out). The search is
the one examples/repose-curriculum.toml runs: width 4 at T 0.8, the greedy step first, kept unless
another candidate scores higher.
"""

from __future__ import annotations

import argparse
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from presrm.config import JudgeConfig
from presrm.intervals import Interval, paired_difference, wilson_interval
from presrm.metrics import auroc
from presrm.model.loading import load_checkpoint, load_policy
from presrm.search.judges import make_judge
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.store.rows import eval_rows
from presrm.tasks import load_task


def pct(ci: Interval | None) -> str:
    return "-" if ci is None else f"{100 * ci.estimate:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"


def verified(tree: Tree) -> bool:
    """Every chosen step accepted (an unjudged one counts as accepted) and an answer at the end."""
    path = tree.path
    return bool(
        path
        and path[-1].is_final
        and all((n.self_score or 0.0) >= 1.0 for n in path if n.self_score is not None)
    )


def least_token_probability(tree: Tree) -> float:
    """The least per-token probability (geometric mean) of a chosen step."""
    return min((math.exp(n.logprob / max(n.n_tokens, 1)) for n in tree.path), default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-ops", type=int, default=4)
    parser.add_argument("--problems", type=int, default=150)
    parser.add_argument("--wordings", type=int, default=2)
    parser.add_argument("--span", choices=("step", "rest"), default="step")
    parser.add_argument(
        "--width", type=int, default=4, help="candidates per step (the greedy one and the re-posed one first)"
    )
    parser.add_argument(
        "--no-propose", action="store_true", help="samples only, no re-posed step among the candidates"
    )
    parser.add_argument(
        "--inverse", action="store_true", help="also undo each step (judge.repose_inverse; step span only)"
    )
    parser.add_argument("--checkpoint", help="a presrm checkpoint instead of the embedded default model")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy = (
        load_checkpoint(args.checkpoint, device="cpu")
        if args.checkpoint
        else load_policy("default", device="cpu")
    )
    task = load_task("arith", {"n_ops": args.n_ops})
    problems = task.sample(args.problems, "eval", seed=12345)
    max_steps = args.n_ops + 3
    started = time.perf_counter()
    greedy = search(
        policy,
        None,
        task,
        problems,
        SearchSettings(width=1, max_steps=max_steps, temperature=0.0),
        LocalIds(),
    )
    greedy_s = time.perf_counter() - started
    cfg = JudgeConfig(
        mode="repose",
        repose_span=args.span,
        repose_wordings=args.wordings,
        repose_propose=not args.no_propose,
        repose_inverse=args.inverse,
        switch_margin=0.0,
    )
    judge = make_judge(policy, cfg, task, max_step_tokens=32)
    settings = SearchSettings(
        width=args.width,
        max_steps=max_steps,
        temperature=0.8,
        greedy_candidate=True,
        switch_margin=0.0,
        seed=1,
    )
    started = time.perf_counter()
    trees = search(policy, judge, task, problems, settings, LocalIds())
    search_s = time.perf_counter() - started
    g = [bool(t.correct) for t in greedy]
    s = [bool(t.correct) for t in trees]
    kept = [verified(t) for t in trees]
    kept_right = sum(k and r for k, r in zip(kept, s, strict=True))
    print(
        f"arith n_ops={args.n_ops}, {len(problems)} held-out problems (seed 12345); repose judge: span {args.span},"
        f"{' steps undone too,' if args.inverse else ''}"
        f" {args.wordings} wording(s), proposals {'off' if args.no_propose else 'on'}, width {args.width}"
    )
    print(f"greedy:  {pct(wilson_interval(sum(g), len(g)))}  ({greedy_s:.0f} s)")
    print(f"search:  {pct(wilson_interval(sum(s), len(s)))}  ({search_s:.0f} s)")
    print(f"search - greedy, paired: {pct(paired_difference(s, g))}")
    precision = wilson_interval(kept_right, sum(kept))
    print(
        f"passed every check: {sum(kept)} of {len(kept)}; right among them: {kept_right}"
        + (f" = {pct(precision)}" if precision is not None else "")
    )
    # Each solution's least graded step score, as the run's evals rows store it (unscored ones left out).
    scored = [
        (t, r["min_score"])
        for t, r in zip(trees, eval_rows(trees, iteration=0, mode="search"), strict=True)
        if r["min_score"] is not None
    ]
    labels = [bool(t.correct) for t, _ in scored]
    area = auroc([score for _, score in scored], labels)
    print(f"auroc_min: {'-' if area is None else f'{area:.3f}'} over {len(scored)} scored solutions")
    # Most chosen paths agree at every step (min score 1.0), so auroc_min is mostly ties. A
    # diagnostic of what a finer score could add: ties broken by the path's least per-token
    # probability of a chosen step (no model call; the policy's own confidence, no label).
    area = auroc([score + least_token_probability(t) / 10 for t, score in scored], labels)
    print(f"  ties broken by the least step token probability: {'-' if area is None else f'{area:.3f}'}")


if __name__ == "__main__":
    main()
