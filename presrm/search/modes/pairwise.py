"""The paper's mode: every pair of distinct candidates judged in both orders, a candidate scoring
its win rate (the verdict source is the policy's [[A]]/[[B]] judge, or any pairwise judge)."""

from __future__ import annotations

from collections.abc import Sequence

from presrm.config import JudgeConfig
from presrm.model.policy import Policy
from presrm.search.judge import ModelJudge, PairRequest, StepJudge
from presrm.search.modes.base import GapSolution, JudgeMode
from presrm.search.modes.expansion_scores import score_pairs
from presrm.search.modes.solution_scores import pair_siblings_right, round_robin_scores
from presrm.search.tree import Expansion, IdSource, SearchSettings
from presrm.tasks.base import Task


class PairwiseMode(JudgeMode):
    """Round robin over sibling pairs; ``soft``: best-of-k ranks by P(win) rather than by wins."""

    def __init__(self, verdicts: StepJudge, *, soft: bool = False) -> None:
        super().__init__(verdicts, verdicts.mode)
        self.soft = soft

    @classmethod
    def from_config(
        cls, policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int
    ) -> JudgeMode:
        return cls(ModelJudge(policy, cfg), soft=cfg.verdict == "probs")

    @classmethod
    def gap_variants(cls, name: str) -> dict[str, dict[str, str]]:
        # The written verdict and its P(A) vs P(B) select differently: one row each.
        return {f"{name}-{v}": {"mode": name, "verdict": v} for v in ("text", "probs")}

    def score(self, expansions: Sequence[Expansion], ids: IdSource, settings: SearchSettings) -> None:
        score_pairs(expansions, self.verdicts, self.name, ids, settings.pair_rule)

    def solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        return round_robin_scores(self.verdicts, question, solutions, self.soft)

    def sibling_pairs_right(self, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
        return pair_siblings_right(self.verdicts, pairs)
