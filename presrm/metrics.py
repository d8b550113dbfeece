"""Evaluation metrics as small pure functions on sequences / numpy arrays.

Nothing here touches the store; :mod:`presrm.eval.evaluate` feeds these functions with
rows read from a run file. Every function documents its definition and what it
returns on degenerate input (empty, one class only, ...): ``None`` means
"undefined", never a made-up zero.

Inputs of mismatched lengths or scores outside ``[0, 1]`` (where probabilities
are required) are programming errors and raise :class:`ValueError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Verdict = str | None  # "A" | "B" | None (unparseable)


def _as_arrays(
    scores: Sequence[float] | npt.ArrayLike, labels: Sequence[bool] | npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in length: {s.size} vs {y.size}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; drop unscored items before calling")
    return s, y


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(values.size, dtype=float)
    # boundaries of runs of equal values in the sorted array
    starts = np.flatnonzero(np.r_[True, sorted_vals[1:] != sorted_vals[:-1]])
    ends = np.r_[starts[1:], values.size]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + 1 + end) / 2.0  # mean of ranks start+1 .. end
    return ranks


def auroc(scores: Sequence[float] | npt.ArrayLike, labels: Sequence[bool] | npt.ArrayLike) -> float | None:
    """Area under the ROC curve of ``scores`` for predicting ``labels`` (True = positive).

    Computed as the Mann–Whitney statistic: the probability that a random positive
    scores higher than a random negative, a tie counting 1/2. Ties are handled with
    average ranks: ``AUROC = (R_pos - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` where
    ``R_pos`` is the sum of the positives' average ranks.

    Degenerate cases: ``None`` when there are no positives or no negatives
    (including empty input); all scores equal gives 0.5.
    """
    s, y = _as_arrays(scores, labels)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = _average_ranks(s)
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass(frozen=True)
class ReliabilityBin:
    """One equal-width confidence bin ``[lo, hi)`` (the last bin includes 1.0).

    A score within 1e-9 below an edge counts as on the edge (float rounding).

    ``mean_score`` and ``accuracy`` are ``None`` for an empty bin.
    """

    lo: float
    hi: float
    count: int
    mean_score: float | None
    accuracy: float | None


_EDGE_EPS = 1e-9


def _bin_index(s: np.ndarray, n_bins: int) -> np.ndarray:
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if s.size and (s.min() < 0.0 or s.max() > 1.0):
        raise ValueError("scores must lie in [0, 1] for calibration metrics")
    # floor(s * n) puts s in [k/n, (k+1)/n); s == 1.0 joins the last bin. The epsilon keeps
    # edge values whose float product lands just below an integer (0.57 * 100) in their bin.
    return np.minimum(np.floor(s * n_bins + _EDGE_EPS).astype(int), n_bins - 1)


def reliability_table(
    scores: Sequence[float] | npt.ArrayLike, labels: Sequence[bool] | npt.ArrayLike, n_bins: int = 10
) -> list[ReliabilityBin]:
    """Reliability diagram data: for each of ``n_bins`` equal-width bins over [0, 1],
    the number of items whose score falls in it, their mean score and the fraction
    whose label is True.

    Always returns ``n_bins`` bins in increasing order; empty bins have ``count == 0``
    and ``None`` for mean_score and accuracy. Empty input gives ``n_bins`` empty bins.
    """
    s, y = _as_arrays(scores, labels)
    idx = _bin_index(s, n_bins)
    table: list[ReliabilityBin] = []
    for k in range(n_bins):
        members = idx == k
        count = int(members.sum())
        table.append(
            ReliabilityBin(
                lo=k / n_bins,
                hi=(k + 1) / n_bins,
                count=count,
                mean_score=float(s[members].mean()) if count else None,
                accuracy=float(y[members].mean()) if count else None,
            )
        )
    return table


def expected_calibration_error(
    scores: Sequence[float] | npt.ArrayLike, labels: Sequence[bool] | npt.ArrayLike, n_bins: int = 10
) -> float | None:
    """Expected calibration error of scores read as probabilities that the label is True.

    ``ECE = sum_b (n_b / N) * |accuracy_b - mean_score_b|`` over the equal-width bins
    of :func:`reliability_table` (empty bins contribute nothing).

    Degenerate cases: ``None`` for empty input. One class only is fine (e.g. all
    labels True and all scores 1.0 gives 0.0).
    """
    table = reliability_table(scores, labels, n_bins)
    total = sum(b.count for b in table)
    if total == 0:
        return None
    ece = 0.0
    for b in table:
        if b.count and b.accuracy is not None and b.mean_score is not None:
            ece += b.count / total * abs(b.accuracy - b.mean_score)
    return float(ece)


@dataclass(frozen=True)
class ProcessBenchScore:
    """ProcessBench's scores: accuracy on erroneous solutions, on correct ones, and their F1.

    A field is ``None`` when its group is empty (see :func:`processbench_f1`).
    """

    acc_erroneous: float | None
    acc_correct: float | None
    f1: float | None
    n_erroneous: int
    n_correct: int


def processbench_f1(
    predicted_first_error: Sequence[int | None], true_first_error: Sequence[int | None]
) -> ProcessBenchScore:
    """ProcessBench (Zheng et al., 2024): name the earliest wrong step of each solution, or None.

    A solution is *erroneous* when ``true_first_error`` is an index, *correct* when it
    is None. ``acc_erroneous`` = fraction of erroneous solutions whose predicted index
    equals the true one exactly; ``acc_correct`` = fraction of correct solutions
    predicted None. ``f1 = 2 a b / (a + b)`` (the harmonic mean), 0.0 when both are 0.

    Degenerate cases: an empty group has accuracy ``None``, and then ``f1`` is ``None``
    too (ProcessBench's F1 needs both groups; reporting the other accuracy as F1 would
    make a judge that flags nothing look perfect on an all-correct set).
    """
    if len(predicted_first_error) != len(true_first_error):
        raise ValueError(
            f"predicted and true lists differ in length: {len(predicted_first_error)} vs {len(true_first_error)}"
        )
    err_hits = err_n = ok_hits = ok_n = 0
    for pred, true in zip(predicted_first_error, true_first_error, strict=True):
        if true is None:
            ok_n += 1
            ok_hits += pred is None
        else:
            err_n += 1
            err_hits += pred is not None and pred == true
    acc_err = err_hits / err_n if err_n else None
    acc_ok = ok_hits / ok_n if ok_n else None
    f1: float | None = None
    if acc_err is not None and acc_ok is not None:
        f1 = 0.0 if acc_err + acc_ok == 0 else 2 * acc_err * acc_ok / (acc_err + acc_ok)
    return ProcessBenchScore(acc_err, acc_ok, f1, err_n, ok_n)


@dataclass(frozen=True)
class DetectionScore:
    """Precision, recall and F1 of flagging wrong steps (positive class = "step is wrong")."""

    precision: float | None
    recall: float | None
    f1: float | None
    n_flagged: int
    n_wrong: int


def judge_step_detection(
    judge_says_wrong: Sequence[bool] | npt.ArrayLike, step_is_wrong: Sequence[bool] | npt.ArrayLike
) -> DetectionScore:
    """How well the judge's "wrong" flags find the steps that really are wrong.

    ``precision = TP / (TP + FP)``: of the steps the judge flagged, the fraction truly
    wrong; ``recall = TP / (TP + FN)``: of the truly wrong steps, the fraction flagged;
    ``f1`` = their harmonic mean.

    Degenerate cases: precision is ``None`` when nothing was flagged, recall is
    ``None`` when no step is wrong, f1 is ``None`` when either is None and 0.0 when
    both are 0.
    """
    said = np.asarray(judge_says_wrong, dtype=bool).reshape(-1)
    wrong = np.asarray(step_is_wrong, dtype=bool).reshape(-1)
    if said.shape != wrong.shape:
        raise ValueError(f"flag and truth arrays differ in length: {said.size} vs {wrong.size}")
    tp = int((said & wrong).sum())
    n_flagged = int(said.sum())
    n_wrong = int(wrong.sum())
    precision = tp / n_flagged if n_flagged else None
    recall = tp / n_wrong if n_wrong else None
    f1: float | None = None
    if precision is not None and recall is not None:
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return DetectionScore(precision, recall, f1, n_flagged, n_wrong)


_SWAP = {"A": "B", "B": "A"}


def judge_accuracy(
    verdicts_order0: Sequence[Verdict], verdicts_order1: Sequence[Verdict], expected: Sequence[str]
) -> float | None:
    """Pairwise judge accuracy with the consistency rule (the paper's Table 3).

    Each pair was shown twice: in order 0 as (A, B) and in order 1 swapped. ``expected``
    is the correct verdict in order 0's presentation ("A" or "B"), so order 1 is right
    when it says the other letter. A pair counts as correct only when *both* orders
    are right; an unparseable verdict (``None``) or a missing order counts as wrong.

    Degenerate cases: ``None`` for no pairs.
    """
    if not len(verdicts_order0) == len(verdicts_order1) == len(expected):
        raise ValueError("verdict and expected lists differ in length")
    if not expected:
        return None
    right = 0
    for v0, v1, exp in zip(verdicts_order0, verdicts_order1, expected, strict=True):
        if exp not in _SWAP:
            raise ValueError(f"expected verdict must be 'A' or 'B', got {exp!r}")
        right += v0 == exp and v1 == _SWAP[exp]
    return right / len(expected)
