"""The likelihood comparison: pairs decided by the policy's own log-probability of each step (no
judge prompt); a whole solution ranks by its log-probability."""

from __future__ import annotations

from collections.abc import Sequence

from presrm.search.modes.base import GapSolution
from presrm.search.modes.pairwise import PairwiseMode


class LikelihoodMode(PairwiseMode):
    """Pairwise in the search and on held-out pairs; best-of-k picks the likeliest solution."""

    @classmethod
    def gap_variants(cls, name: str) -> dict[str, dict[str, str]]:
        return {name: {"mode": name}}  # no written verdict: one row

    def solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        return [s.logprob for s in solutions]
