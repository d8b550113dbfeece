"""Calibration view: do a solution's self-scores predict its final correctness?

Computed in memory from the per-tree summary table (presrm.inspect.problems), without going
back to the file: reliability bins and AUROC per score aggregate, and the trees behind each bin.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from presrm.errors import StoreError

SCORES: tuple[str, ...] = ("min_score", "mean_score", "last_score")


@dataclass(frozen=True)
class CalibrationBin:
    """Solutions whose score lies in [lo, hi) (the last bin includes 1.0)."""

    lo: float
    hi: float
    n: int
    mean_score: float | None
    accuracy: float | None


@dataclass(frozen=True)
class TreeRef:
    """A solution listed in the calibration view."""

    tree_id: int
    problem_id: str
    iteration: int
    phase: str
    score: float
    correct: bool
    final_answer: str | None


@dataclass(frozen=True)
class Calibration:
    """Self-score of finished solutions against their correctness."""

    score: str
    n: int
    bins: tuple[CalibrationBin, ...]
    ece: float | None
    """Expected calibration error: sum over bins of n_bin/n * |accuracy - mean score|."""
    auroc: float | None
    confident_wrong: tuple[TreeRef, ...]
    unconfident_right: tuple[TreeRef, ...]


def calibration(
    trees: pa.Table,
    *,
    score: str = "min_score",
    iteration: int | None = None,
    phase: str | None = None,
    n_bins: int = 10,
    top: int = 10,
) -> Calibration:
    """Reliability bins, ECE, AUROC and extremes over solutions with a score (no file access).

    A solution counts when its tree has the score and a final answer; unfinished
    trees are left out. Bins, ECE and AUROC use :mod:`presrm.metrics` (the loop's
    definitions).
    """
    from presrm.metrics import auroc, expected_calibration_error, reliability_table

    if score not in SCORES:
        raise StoreError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    if n_bins < 1:
        raise StoreError("calibration needs at least one bin")
    mask = pc.and_(pc.is_valid(trees.column(score)), pc.is_valid(trees.column("correct")))
    if iteration is not None:
        mask = pc.and_(mask, pc.equal(trees.column("iteration"), iteration))
    if phase is not None:
        mask = pc.and_(mask, pc.equal(trees.column("phase"), phase))
    rows = trees.filter(mask)
    scores = [min(1.0, max(0.0, float(v))) for v in rows.column(score).to_pylist()]
    labels = [bool(v) for v in rows.column("correct").to_pylist()]
    bins = tuple(
        CalibrationBin(b.lo, b.hi, b.count, b.mean_score, b.accuracy)
        for b in reliability_table(scores, labels, n_bins)
    )

    def refs(correct: bool, descending: bool) -> tuple[TreeRef, ...]:
        part = rows.filter(pc.equal(rows.column("correct"), correct))
        if part.num_rows == 0:
            return ()
        order = "descending" if descending else "ascending"
        part = part.take(pc.sort_indices(part, sort_keys=[(score, order), ("tree_id", "ascending")]))
        return tuple(
            TreeRef(
                r["tree_id"],
                r["problem_id"],
                r["iteration"],
                r["phase"],
                float(r[score]),
                bool(r["correct"]),
                r["final_answer"],
            )
            for r in part.slice(0, top).to_pylist()
        )

    return Calibration(
        score=score,
        n=len(scores),
        bins=bins,
        ece=expected_calibration_error(scores, labels, n_bins),
        auroc=auroc(scores, labels),
        confident_wrong=refs(False, True),
        unconfident_right=refs(True, False),
    )
