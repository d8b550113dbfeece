"""Wilson and paired-difference intervals against values worked out by hand."""

from __future__ import annotations

import pytest

from presrm.intervals import paired_difference, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (5, 10, 0.236593, 0.763407),  # textbook Wilson interval of 0.5 at n = 10
        (0, 10, 0.0, 0.277533),  # no successes: the interval still has width (unlike p ± 1.96 se)
        (10, 10, 0.722467, 1.0),
    ],
)
def test_wilson_interval(k: int, n: int, low: float, high: float) -> None:
    ci = wilson_interval(k, n)
    assert ci is not None
    assert (ci.estimate, ci.low, ci.high) == pytest.approx((k / n, low, high), abs=1e-6)


def test_wilson_interval_degenerate_and_bad_input() -> None:
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_paired_difference_by_hand() -> None:
    # differences +1, +1, 0, -1, 0: mean 0.2, sample variance (0.64 + 0.64 + 0.04 + 1.44 + 0.04) / 4 = 0.7
    ci = paired_difference([True, True, False, False, True], [False, False, False, True, True])
    assert ci is not None
    half = 1.959964 * (0.7 / 5) ** 0.5
    assert (ci.estimate, ci.low, ci.high, ci.n) == pytest.approx((0.2, 0.2 - half, 0.2 + half, 5), abs=1e-6)


def test_paired_difference_is_narrower_than_independent_intervals() -> None:
    # Search fixes 20 of 200 problems and breaks none: 50 % -> 60 %. Independent Wilson intervals
    # overlap; the paired interval of the difference lies clearly above 0.
    greedy = [i < 100 for i in range(200)]
    search = [i < 120 for i in range(200)]
    ci = paired_difference(search, greedy)
    assert ci is not None and ci.low > 0.05
    g, s = wilson_interval(100, 200), wilson_interval(120, 200)
    assert g is not None and s is not None and g.high > s.low


def test_paired_difference_degenerate_and_bad_input() -> None:
    assert paired_difference([True], [False]) is None
    same = paired_difference([True, False, True], [True, False, True])
    assert same is not None and (same.low, same.high) == (0.0, 0.0)
    with pytest.raises(ValueError):
        paired_difference([True, True], [True])


def test_paired_difference_stays_within_minus_one_to_one() -> None:
    # 10 of 12 fixed, none broken: mean 0.833, sample sd 0.389, so mean + 1.96 sd / sqrt(12) = 1.05.
    ci = paired_difference([i < 10 for i in range(12)], [False] * 12)
    assert ci is not None and ci.high == 1.0 and ci.low == pytest.approx(0.833 - 0.220, abs=1e-3)
    worse = paired_difference([False] * 12, [i < 10 for i in range(12)])
    assert worse is not None and worse.low == -1.0
