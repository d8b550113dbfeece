"""Greedy accuracy of a run's models on the questions its step-span re-posing judge asks.

    python benchmarks/check_level.py RUN.duckdb [RUN2.duckdb ...] [--problems 300] [--max-start 100]

The step-span re-posing judge checks a step by asking its operation as a fresh one-operation question
that starts from the running total (and, with ``judge.repose_inverse``, the operation undone). A
model that answers those questions wrong rejects right steps. This measures every iteration's model
of each run (M0: the embedded default) on held-out 1-operation arith questions whose start amount
reaches ``--max-start`` (the base's own 1-operation kind), greedy, with a Wilson 95 % interval and
the paired difference against the run's M0 on the same questions. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from presrm.intervals import paired_difference, wilson_interval
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.run.quiet import quiet_third_party
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.store.reader import query_rows
from presrm.tasks import load_task
from presrm.tasks.base import Problem, Task


def right_answers(policy: Policy, task: Task, problems: list[Problem]) -> list[bool]:
    settings = SearchSettings(width=1, max_steps=4, temperature=0.0)
    return [bool(t.correct) for t in search(policy, None, task, problems, settings, LocalIds())]


def checkpoints(run: Path) -> list[tuple[int, str | None]]:
    """(iteration, checkpoint directory) of each iteration's model; None for the embedded default."""
    return [
        (int(it), ckpt)
        for it, ckpt in query_rows(run, "SELECT iteration, checkpoint FROM iterations ORDER BY 1")
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--problems", type=int, default=300)
    parser.add_argument("--max-start", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quiet_third_party(False)  # no progress bar per checkpoint loaded
    task = load_task("arith", {"n_ops": 1, "max_operand": 20, "ops": "+-", "max_start": args.max_start})
    problems = task.sample(args.problems, "eval", seed=12345)
    print(f"1-operation questions, start amount up to {args.max_start}: {len(problems)} held out, greedy")
    print("\n| run | model | right, % [95 % interval] | − M0, points [95 % interval] |\n|---|---|---:|---:|")
    base: list[bool] | None = None
    for run in args.runs:
        first: list[bool] | None = None
        for it, ckpt in checkpoints(run):
            if ckpt is None and base is not None:
                right = base  # the embedded default, already measured
            else:
                policy = (
                    load_policy("default", device="cpu")
                    if ckpt is None
                    else load_checkpoint(ckpt, device="cpu")
                )
                right = right_answers(policy, task, problems)
            if ckpt is None:
                base = right
            first = right if first is None else first
            ci = wilson_interval(sum(right), len(right))
            assert ci is not None
            diff = paired_difference(right, first) if right is not first else None
            gain = (
                "—"
                if diff is None
                else f"{100 * diff.estimate:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
            )
            print(
                f"| {run.stem} | M{it} | {100 * ci.estimate:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}] | {gain} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
