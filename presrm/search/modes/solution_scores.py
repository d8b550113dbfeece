"""Ranking whole sampled solutions and deciding sibling pairs from a verdict source (the
verifier-gap table's selectors)."""

from __future__ import annotations

from collections.abc import Sequence

from presrm.search.judge import PairRequest, PointRequest, StepJudge
from presrm.search.modes.base import GapSolution


def divergence(a: GapSolution, b: GapSolution) -> int | None:
    """Index of the first step where two solutions differ (None: one is a prefix of the other)."""
    for d, (x, y) in enumerate(zip(a.steps, b.steps, strict=False)):
        if x != y:
            return d
    return None


def min_step_scores(verdicts: StepJudge, question: str, solutions: Sequence[GapSolution]) -> list[float]:
    """Each solution's minimum P(correct) over its steps judged alone (1.0 without steps)."""
    requests = [
        PointRequest(question, s.steps[:d], step) for s in solutions for d, step in enumerate(s.steps)
    ]
    results = iter(verdicts.pointwise(requests))
    scores = []
    for s in solutions:
        probs = [next(results).p_a or 0.0 for _ in s.steps]
        scores.append(min(probs, default=1.0))
    return scores


def _pair_requests(question: str, a: GapSolution, b: GapSolution, d: int) -> list[PairRequest]:
    prefix = a.steps[:d]
    return [
        PairRequest(question, prefix, a.steps[d], b.steps[d]),
        PairRequest(question, prefix, b.steps[d], a.steps[d]),
    ]


def round_robin_scores(
    verdicts: StepJudge, question: str, solutions: Sequence[GapSolution], soft: bool
) -> list[float]:
    """Round robin at each pair's divergence step, both orders: a consistent win counts 1, an
    inconsistent or missing verdict ½ to each (``soft``: the judge's P(win) averaged over orders)."""
    pairs = [
        (i, j, d)
        for i in range(len(solutions))
        for j in range(i + 1, len(solutions))
        if (d := divergence(solutions[i], solutions[j])) is not None
    ]
    requests = [r for i, j, d in pairs for r in _pair_requests(question, solutions[i], solutions[j], d)]
    results = verdicts.pairwise(requests)
    scores = [0.0] * len(solutions)
    for n, (i, j, _) in enumerate(pairs):
        first, second = results[2 * n], results[2 * n + 1]
        if soft:
            p_i = ((first.p_a or 0.5) + (second.p_b or 0.5)) / 2
        else:
            p_i = 1.0 if (first.verdict, second.verdict) == ("A", "B") else 0.0
            p_i = p_i if (first.verdict, second.verdict) in (("A", "B"), ("B", "A")) else 0.5
        scores[i] += p_i
        scores[j] += 1.0 - p_i
    return scores


def pair_siblings_right(verdicts: StepJudge, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
    """Each pair judged in both orders: right when both orders name the right step."""
    swapped = [PairRequest(r.question, r.previous_steps, r.step_b, r.step_a) for r, _ in pairs]
    results = verdicts.pairwise([r for r, _ in pairs] + swapped)
    first, second = results[: len(pairs)], results[len(pairs) :]
    right = []
    for (_, a_right), r0, r1 in zip(pairs, first, second, strict=True):
        want = ("A", "B") if a_right else ("B", "A")
        right.append((r0.verdict, r1.verdict) == want)
    return right


def point_siblings_right(verdicts: StepJudge, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
    """Each step of each pair judged alone: right when the right step's P(correct) is higher."""
    requests = [PointRequest(r.question, r.previous_steps, s) for r, _ in pairs for s in (r.step_a, r.step_b)]
    probs = [res.p_a or 0.0 for res in verdicts.pointwise(requests)]
    return [(probs[2 * n] > probs[2 * n + 1]) == a_right for n, (_, a_right) in enumerate(pairs)]
