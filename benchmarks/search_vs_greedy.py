"""What the judge benchmarks share: the model to load, the greedy baseline on the same problems,
and one table row of a self-judged search against it (accuracy, paired gain, step and solution AUROC)."""

from __future__ import annotations

import argparse
import time

from presrm.intervals import paired_difference, wilson_interval
from presrm.metrics import auroc
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.tasks.base import Problem, Task
from presrm.train.default_recipe import ensure_model


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def load_model(args: argparse.Namespace) -> tuple[Policy, str]:
    """``--checkpoint`` if given, else the built-in ``--model``; and its name for the header."""
    if args.checkpoint:
        return load_checkpoint(args.checkpoint), args.checkpoint
    ensure_model(args.model)
    return load_policy(args.model), args.model


def greedy_baseline(
    policy: Policy, task: Task, problems: list[Problem], args: argparse.Namespace, where: str
) -> tuple[list[bool], float]:
    """Greedy step-by-step decoding of ``problems``: per-problem correctness and wall seconds (printed)."""
    started = time.perf_counter()
    plain = SearchSettings(
        width=1, max_steps=args.max_steps, temperature=0.0, max_step_tokens=args.max_step_tokens
    )
    greedy = [t.correct for t in search(policy, None, task, problems, plain, LocalIds())]
    seconds = time.perf_counter() - started
    acc = wilson_interval(sum(greedy), len(greedy))
    assert acc is not None
    print(f"{where}, arith n_ops={args.n_ops}, {len(problems)} held-out problems (seed {args.seed})")
    print(f"greedy: {pct(acc.estimate)} [{pct(acc.low)}, {pct(acc.high)}]  ({seconds:.0f} s)\n")
    return greedy, seconds


def row_cells(trees: list[Tree], greedy: list[bool], seconds: float, greedy_s: float) -> str:
    """The table cells of one search against greedy on the same problems."""
    right = [t.correct for t in trees]
    ci = wilson_interval(sum(right), len(right))
    gain = paired_difference(right, greedy)
    assert ci is not None and gain is not None
    only_search = sum(r and not g for r, g in zip(right, greedy, strict=True))
    only_greedy = sum(g and not r for r, g in zip(right, greedy, strict=True))
    # The graded score, as a run's judge_step_auroc and auroc_min use it (equal to self_score
    # for pointwise judges).
    nodes = [n for t in trees for n in t.nodes if n.step_check is not None and n.soft_score is not None]
    step_auc = auroc([n.soft_score or 0.0 for n in nodes], [bool(n.step_check) for n in nodes])
    mins = [min((n.soft_score for n in t.path if n.soft_score is not None), default=1.0) for t in trees]
    sol_auc = auroc(mins, right)
    return (
        f"{pct(ci.estimate)} [{pct(ci.low)}, {pct(ci.high)}]"
        f" | {100 * gain.estimate:+.1f} [{100 * gain.low:+.1f}, {100 * gain.high:+.1f}]"
        f" | {only_search} / {only_greedy} | {step_auc or float('nan'):.3f} | {sol_auc or float('nan'):.3f}"
        f" | {seconds / greedy_s:.1f} |"
    )
