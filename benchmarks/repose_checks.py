"""What the re-posing judge's checks did on a run's held-out search, from the stored rows.

    python benchmarks/repose_checks.py RUN.duckdb [RUN2.duckdb ...] [--resamples 2000]

For every iteration whose evaluation ran the search (``eval_search = true``):

- ``auroc_min`` (each search solution's least graded step score against its final correctness, the
  metric ``presrm eval`` stores) with a bootstrap 95 % interval over the solutions, and how many wrong
  solutions it rests on;
- every one-operation check behind the chosen steps of the *right* solutions, from the ``judgments``
  rows' raw text (step span: ``rest before the step: Q -> A`` against the step's value, and, with
  ``judge.repose_inverse``, ``step undone: Q -> A (before the step: S)``), split by the amount the
  check's question starts from: 0 or 1, or 2 and more. A failed check on a right step is a false
  rejection.

Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import random
import re
from pathlib import Path

from presrm.metrics import auroc
from presrm.store.reader import query_rows

FORWARD = re.compile(r"^rest before the step: (.*) -> (\S+)$", re.M)
AFTER = re.compile(r"^rest after the step: .*value is (\S+)$", re.M)
UNDONE = re.compile(r"^step undone: (.*) -> (\S+) \(before the step: (\S+)\)$", re.M)
FIRST_NUMBER = re.compile(r"\d+")


def bootstrap_auroc(rows: list[tuple[float, bool]], resamples: int) -> tuple[float, float, float] | None:
    """The AUROC of ``rows`` (score, right) with a percentile bootstrap 95 % interval."""
    area = auroc([score for score, _ in rows], [right for _, right in rows])
    if area is None:
        return None
    rng = random.Random(0)
    draws = []
    for _ in range(resamples):
        sample = [rows[rng.randrange(len(rows))] for _ in rows]
        value = auroc([score for score, _ in sample], [right for _, right in sample])
        if value is not None:
            draws.append(value)
    draws.sort()
    return area, draws[int(0.025 * len(draws))], draws[int(0.975 * len(draws)) - 1]


def checks(raw: str) -> list[tuple[int, bool]]:
    """(start amount of the check's question, whether it agreed) for each check in one judgment."""
    after = AFTER.search(raw)
    out = []
    if after is not None:
        for question, answer in FORWARD.findall(raw):
            start = FIRST_NUMBER.search(question)
            if start is not None:
                out.append((int(start.group()), answer == after.group(1)))
    for question, answer, before in UNDONE.findall(raw):
        start = FIRST_NUMBER.search(question)
        if start is not None:
            out.append((int(start.group()), answer == before))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args()
    print(
        "| run | model | `auroc_min` [95 % bootstrap] | wrong solutions | checks from 0-1 failed on right steps"
        " | checks from 2+ failed | share of the failures from 0-1 |\n|---|---|---|---:|---:|---:|---:|"
    )
    for run in args.runs:
        iterations = query_rows(run, "SELECT DISTINCT iteration FROM evals WHERE mode = 'search' ORDER BY 1")
        for (it,) in iterations:
            rows = query_rows(
                run,
                "SELECT min_score, correct FROM evals WHERE mode = 'search' AND iteration = ?"
                " AND min_score IS NOT NULL",
                [it],
            )
            scored = [(float(score), bool(right)) for score, right in rows]
            area = bootstrap_auroc(scored, args.resamples)
            raws = query_rows(
                run,
                "SELECT j.raw_output FROM evals e JOIN nodes n ON n.iteration = e.iteration AND n.tree_id = e.tree_id"
                " AND n.phase = 'eval' AND n.chosen JOIN judgments j ON j.iteration = e.iteration"
                " AND j.phase = 'eval' AND j.node_a = n.node_id"
                " WHERE e.mode = 'search' AND e.iteration = ? AND e.correct",
                [it],
            )
            low = [0, 0]  # failed, all: checks whose question starts at 0 or 1
            high = [0, 0]
            for (raw,) in raws:
                for start, agreed in checks(raw or ""):
                    tally = low if start <= 1 else high
                    tally[0] += not agreed
                    tally[1] += 1
            failed = low[0] + high[0]
            shown = "-" if area is None else f"{area[0]:.3f} [{area[1]:.3f}, {area[2]:.3f}]"
            print(
                f"| {run.stem} | M{it} | {shown} | {sum(not right for _, right in scored)}"
                f" | {low[0]} / {low[1]} ({100 * low[0] / max(low[1], 1):.1f} %)"
                f" | {high[0]} / {high[1]} ({100 * high[0] / max(high[1], 1):.1f} %)"
                f" | {100 * low[0] / max(failed, 1):.0f} % |",
                flush=True,
            )


if __name__ == "__main__":
    main()
