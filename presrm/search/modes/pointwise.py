"""The pointwise judge: P(Yes) to "is this next step correct?", each candidate alone."""

from __future__ import annotations

from collections.abc import Sequence

from presrm.config import JudgeConfig
from presrm.model.policy import Policy
from presrm.search.judge import ModelJudge, PairRequest, StepJudge
from presrm.search.modes.base import EFT_POINTWISE, HELD_OUT_STEPS, GapSolution, JudgeMode
from presrm.search.modes.expansion_scores import score_points
from presrm.search.modes.solution_scores import min_step_scores, point_siblings_right
from presrm.search.tree import Expansion, IdSource, SearchSettings
from presrm.tasks.base import Task


class PointwiseMode(JudgeMode):
    """Scores each candidate by its P(Yes); trained and measured on held-out steps in that form."""

    eft_form = EFT_POINTWISE
    held_out = HELD_OUT_STEPS

    def __init__(self, verdicts: StepJudge) -> None:
        super().__init__(verdicts, verdicts.mode)

    @classmethod
    def from_config(
        cls, policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int
    ) -> JudgeMode:
        return cls(ModelJudge(policy, cfg))

    def score(self, expansions: Sequence[Expansion], ids: IdSource, settings: SearchSettings) -> None:
        score_points(expansions, self.verdicts, self.name, "p_yes", ids)

    def solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        return min_step_scores(self.verdicts, question, solutions)

    def sibling_pairs_right(self, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
        return point_siblings_right(self.verdicts, pairs)
