"""Metrics against values computed by hand on small fixed tables, degenerate cases included."""

from __future__ import annotations

import itertools
import random

import pytest

from presrm.metrics import (
    ReliabilityBin,
    auroc,
    expected_calibration_error,
    judge_accuracy,
    judge_step_detection,
    processbench_f1,
    reliability_table,
)

# ---- AUROC -------------------------------------------------------------------------------


def test_auroc_by_hand() -> None:
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: pairs won 0.35>0.1, 0.8>0.1, 0.8>0.4; lost 0.35<0.4 -> 3/4
    assert auroc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)


def test_auroc_ties_count_half() -> None:
    # positives 0.5, 0.9; negatives 0.5, 0.5: 0.5 vs 0.5 twice = 2 * 1/2, 0.9 beats both = 2 -> 3/4
    assert auroc([0.5, 0.5, 0.5, 0.9], [True, False, False, True]) == pytest.approx(0.75)
    # all scores equal: every pair is a tie
    assert auroc([0.3, 0.3, 0.3], [True, False, True]) == pytest.approx(0.5)


def test_auroc_perfect_and_inverted() -> None:
    assert auroc([0.9, 0.8, 0.2, 0.1], [True, True, False, False]) == 1.0
    assert auroc([0.9, 0.8, 0.2, 0.1], [False, False, True, True]) == 0.0


def test_auroc_degenerate() -> None:
    assert auroc([0.2, 0.9], [True, True]) is None  # all correct
    assert auroc([0.2, 0.9], [False, False]) is None  # all wrong
    assert auroc([], []) is None
    with pytest.raises(ValueError):
        auroc([0.1, 0.2], [True])
    with pytest.raises(ValueError):
        auroc([float("nan"), 0.2], [True, False])


def test_auroc_matches_pair_counting() -> None:
    # The rank formula against the definition itself (count wins + ties/2 over all pairs).
    rng = random.Random(3)
    scores = [rng.choice([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]) for _ in range(60)]
    labels = [rng.random() < 0.4 for _ in range(60)]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    assert auroc(scores, labels) == pytest.approx(wins / (len(pos) * len(neg)))


# ---- calibration -------------------------------------------------------------------------

SCORES = [0.05, 0.15, 0.15, 0.95, 1.0]
LABELS = [False, True, False, True, True]


def test_ece_by_hand() -> None:
    # bin [0, .1): 0.05 wrong -> |0 - .05| = .05, weight 1/5
    # bin [.1, .2): 0.15, 0.15, one right -> |.5 - .15| = .35, weight 2/5
    # bin [.9, 1]: 0.95, 1.0 right -> |1 - .975| = .025, weight 2/5
    expected = 0.2 * 0.05 + 0.4 * 0.35 + 0.4 * 0.025  # = 0.16
    assert expected_calibration_error(SCORES, LABELS) == pytest.approx(0.16)
    assert expected_calibration_error(SCORES, LABELS) == pytest.approx(expected)


def test_ece_two_bins_by_hand() -> None:
    # n_bins=2: [0, .5) holds .05, .15, .15 (mean .35/3, 1 right of 3); [.5, 1] holds .95, 1.0 (both right)
    low = abs(1 / 3 - 0.35 / 3)
    high = abs(1.0 - 0.975)
    assert expected_calibration_error(SCORES, LABELS, n_bins=2) == pytest.approx(0.6 * low + 0.4 * high)
    # 0.5 falls in the upper bin
    assert expected_calibration_error([0.5], [True], n_bins=2) == pytest.approx(0.5)


def test_ece_degenerate() -> None:
    assert expected_calibration_error([], []) is None
    assert expected_calibration_error([1.0, 1.0], [True, True]) == 0.0  # all correct, fully confident
    assert expected_calibration_error([0.8, 0.8, 0.8], [False, False, False]) == pytest.approx(
        0.8
    )  # all wrong
    with pytest.raises(ValueError):
        expected_calibration_error([1.2], [True])
    with pytest.raises(ValueError):
        expected_calibration_error([0.5], [True], n_bins=0)


def test_reliability_table_by_hand() -> None:
    table = reliability_table(SCORES, LABELS)
    assert len(table) == 10
    assert table[0] == ReliabilityBin(0.0, 0.1, 1, pytest.approx(0.05), 0.0)
    assert table[1].count == 2 and table[1].mean_score == pytest.approx(0.15) and table[1].accuracy == 0.5
    assert table[9].count == 2 and table[9].mean_score == pytest.approx(0.975) and table[9].accuracy == 1.0
    assert table[9].lo == pytest.approx(0.9) and table[9].hi == pytest.approx(1.0)
    for b in table[2:9]:
        assert b.count == 0 and b.mean_score is None and b.accuracy is None
    assert sum(b.count for b in table) == len(SCORES)


def test_reliability_edges_and_empty() -> None:
    # values exactly on edges go to the upper bin, even when the float product rounds down (0.57 * 100)
    table = reliability_table([0.0, 0.57, 0.3, 0.7], [True, True, False, False], n_bins=100)
    assert [i for i, b in enumerate(table) if b.count] == [0, 30, 57, 70]
    empty = reliability_table([], [], n_bins=4)
    assert [b.count for b in empty] == [0, 0, 0, 0]
    assert [b.lo for b in empty] == [0.0, 0.25, 0.5, 0.75]


# ---- ProcessBench ------------------------------------------------------------------------


def test_processbench_by_hand() -> None:
    predicted = [2, 1, None, None, 4, None]
    true = [2, 3, 1, None, None, None]
    # erroneous: 2==2 right, 1!=3 wrong, None!=1 wrong -> 1/3; correct: None right, 4 wrong, None right -> 2/3
    score = processbench_f1(predicted, true)
    assert score.acc_erroneous == pytest.approx(1 / 3)
    assert score.acc_correct == pytest.approx(2 / 3)
    assert score.f1 == pytest.approx(2 * (1 / 3) * (2 / 3) / (1 / 3 + 2 / 3))  # = 4/9
    assert (score.n_erroneous, score.n_correct) == (3, 3)


def test_processbench_degenerate() -> None:
    all_correct = processbench_f1([None, 2], [None, None])
    assert all_correct.acc_erroneous is None and all_correct.acc_correct == 0.5 and all_correct.f1 is None
    all_wrong = processbench_f1([1, 2], [1, 3])
    assert all_wrong.acc_erroneous == 0.5 and all_wrong.acc_correct is None and all_wrong.f1 is None
    empty = processbench_f1([], [])
    assert (empty.acc_erroneous, empty.acc_correct, empty.f1) == (None, None, None)
    zero = processbench_f1([None, 1], [2, None])  # wrong on both groups
    assert zero.f1 == 0.0
    perfect = processbench_f1([3, None], [3, None])
    assert perfect.f1 == 1.0
    with pytest.raises(ValueError):
        processbench_f1([1], [])


# ---- judge -------------------------------------------------------------------------------


def test_step_detection_by_hand() -> None:
    said = [True, True, False, False, True, False]
    wrong = [True, False, True, False, True, True]
    det = judge_step_detection(said, wrong)
    # TP = 2 (positions 0, 4); flagged 3; wrong 4
    assert det.precision == pytest.approx(2 / 3)
    assert det.recall == pytest.approx(2 / 4)
    assert det.f1 == pytest.approx(2 * (2 / 3) * 0.5 / (2 / 3 + 0.5))
    assert (det.n_flagged, det.n_wrong) == (3, 4)


def test_step_detection_degenerate() -> None:
    nothing_flagged = judge_step_detection([False, False], [True, False])
    assert nothing_flagged.precision is None and nothing_flagged.recall == 0.0 and nothing_flagged.f1 is None
    nothing_wrong = judge_step_detection([True, False], [False, False])
    assert nothing_wrong.precision == 0.0 and nothing_wrong.recall is None and nothing_wrong.f1 is None
    all_missed = judge_step_detection([True, False], [False, True])
    assert all_missed.f1 == 0.0
    empty = judge_step_detection([], [])
    assert (empty.precision, empty.recall, empty.f1) == (None, None, None)


def test_judge_accuracy_consistency_rule() -> None:
    v0 = ["A", "A", "B", None, "A"]
    v1 = ["B", "A", "A", "B", "B"]
    expected = ["A", "A", "B", "B", "B"]
    # 1: A then swapped B = right; 2: A then A = inconsistent; 3: right; 4: unparseable;
    # 5: consistent but names the wrong step -> 2 of 5
    assert judge_accuracy(v0, v1, expected) == pytest.approx(0.4)


def test_judge_accuracy_degenerate() -> None:
    assert judge_accuracy([], [], []) is None
    assert judge_accuracy([None], [None], ["A"]) == 0.0
    assert judge_accuracy(["B"], ["A"], ["B"]) == 1.0
    with pytest.raises(ValueError):
        judge_accuracy(["A"], ["B"], ["C"])
    with pytest.raises(ValueError):
        judge_accuracy(["A"], [], ["A"])
