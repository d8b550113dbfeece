"""Greedy accuracy of a run's models on the questions its step-span re-posing judge asks.

    python benchmarks/check_level.py RUN.duckdb [RUN2.duckdb ...] [--problems 300] [--max-start 100]

The step-span re-posing judge checks a step by asking its operation as a fresh one-operation question
that starts from the running total (and, with ``judge.repose_inverse``, the operation undone). A
model that answers those questions wrong rejects right steps. This measures every iteration's model
of each run (M0: the embedded default) greedily on two held-out sets of 1-operation questions:

- ``wide``: the base's own 1-operation kind, start amounts from 2 up to ``--max-start``;
- ``from 0-1``: start amounts 0 and 1, which running totals reach and no kind of the base's data
  holds (the arith task starts every problem at 2 or more), written with the task's own wording.

Each cell is the accuracy with a Wilson 95 % interval and the paired difference against the run's
M0 on the same questions. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
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
from presrm.tasks.arith_rewrite import render_question
from presrm.tasks.base import Problem, Task


def from_zero_or_one(n: int, max_operand: int, seed: int) -> list[Problem]:
    """``n`` one-operation questions starting at 0 or 1 (a subtraction only where it stays >= 0)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        start = rng.randint(0, 1)
        op = "-" if start == 1 and rng.random() < 0.25 else "+"
        b = 1 if op == "-" else rng.randint(1, max_operand)
        answer = start + b if op == "+" else start - b
        question = render_question(lambda seq: seq[rng.randrange(len(seq))], rng.random, start, [(op, b)])
        steps = (f"{start} {op} {b} = {answer}", f"The answer is {answer}.")
        out.append(Problem(f"from01-{i}", question, str(answer), steps, "arith"))
    return out


def right_answers(policy: Policy, task: Task, problems: list[Problem]) -> list[bool]:
    settings = SearchSettings(width=1, max_steps=4, temperature=0.0)
    return [bool(t.correct) for t in search(policy, None, task, problems, settings, LocalIds())]


def checkpoints(run: Path) -> list[tuple[int, str | None]]:
    """(iteration, checkpoint directory) of each iteration's model; None for the embedded default."""
    rows = query_rows(run, "SELECT iteration, checkpoint FROM iterations ORDER BY 1")
    return [(int(it), ckpt) for it, ckpt in rows]


def cell(right: list[bool], first: list[bool]) -> str:
    ci = wilson_interval(sum(right), len(right))
    assert ci is not None
    text = f"{100 * ci.estimate:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"
    diff = paired_difference(right, first) if right is not first else None
    if diff is not None:
        text += f", {100 * diff.estimate:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
    return text


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
    sets = {
        "wide": task.sample(args.problems, "eval", seed=12345),
        "from 0-1": from_zero_or_one(args.problems, 20, seed=12345),
    }
    print(
        f"1-operation questions, greedy, {args.problems} per set: wide = start 2 to {args.max_start} (the base's"
        " own 1-op kind); from 0-1 = start 0 or 1 (in no kind of the base's data). Accuracy %"
        " [95 % interval], then the paired difference against M0 in points."
    )
    print("\n| run | model | wide | from 0-1 |\n|---|---|---:|---:|")
    base: dict[str, list[bool]] = {}
    for run in args.runs:
        first: dict[str, list[bool]] = {}
        for it, ckpt in checkpoints(run):
            if ckpt is None and base:
                right = base  # the embedded default, already measured
            else:
                policy = (
                    load_policy("default", device="cpu")
                    if ckpt is None
                    else load_checkpoint(ckpt, device="cpu")
                )
                right = {name: right_answers(policy, task, problems) for name, problems in sets.items()}
            if ckpt is None:
                base = right
            first = first or right
            cells = " | ".join(cell(right[name], first[name]) for name in sets)
            print(f"| {run.stem} | M{it} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
