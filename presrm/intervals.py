"""95 % intervals for accuracies and for paired differences of accuracies (pure functions).

A single accuracy gets a Wilson score interval (right near 0 and 1, where the normal
approximation is not). Two settings evaluated on the same problems are compared by the mean
of their per-problem differences ``a_i - b_i`` (each -1, 0 or +1) with a normal interval on
that mean: the paired interval, far narrower than two independent intervals because both
settings see the same hard and easy problems.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int


def wilson_interval(successes: int, n: int, z: float = Z95) -> Interval | None:
    """Wilson score interval of ``successes / n``; ``None`` for n = 0."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, {n}], got {successes}")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(p, max(0.0, centre - half), min(1.0, centre + half), n)


def paired_difference(a: Sequence[bool], b: Sequence[bool], z: float = Z95) -> Interval | None:
    """Mean of ``a_i - b_i`` over paired outcomes with a normal 95 % interval; ``None`` for n < 2.

    When every difference is equal (e.g. both settings agree on every problem), the sample
    variance is 0 and so is the interval's width: the data show no disagreement at all. The
    interval is clipped to [-1, 1], where a difference of two 0/1 outcomes lies: a small sample
    with a large gain would otherwise reach past it.
    """
    if len(a) != len(b):
        raise ValueError("paired outcomes differ in length")
    n = len(a)
    if n < 2:
        return None
    diffs = [int(x) - int(y) for x, y in zip(a, b, strict=True)]
    mean = sum(diffs) / n
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    half = z * math.sqrt(var / n)
    return Interval(mean, max(-1.0, mean - half), min(1.0, mean + half), n)
