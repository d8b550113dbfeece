"""The check judge: a step scores the share of the policy's written re-computations of its
equations that agree with it (presrm.search.check_judge)."""

from __future__ import annotations

from collections.abc import Sequence

from presrm.config import JudgeConfig
from presrm.model.policy import Policy
from presrm.search.check_judge import MODE, CheckJudge
from presrm.search.judge import PairRequest
from presrm.search.modes.base import GapSolution, JudgeMode
from presrm.search.modes.expansion_scores import score_points
from presrm.search.modes.solution_scores import min_step_scores, point_siblings_right
from presrm.search.tree import Expansion, IdSource, SearchSettings
from presrm.tasks.base import Task


class CheckMode(JudgeMode):
    """Each candidate scored alone by its check share; held-out pairs compare the two shares."""

    # Its judgments lack a verdict only for a step without an equation, never for bad text.
    no_verdict = "judged steps had no equation to check"

    def __init__(self, verdicts: CheckJudge) -> None:
        super().__init__(verdicts, MODE)

    @classmethod
    def from_config(
        cls, policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int
    ) -> JudgeMode:
        return cls(CheckJudge(policy))

    def score(self, expansions: Sequence[Expansion], ids: IdSource, settings: SearchSettings) -> None:
        score_points(expansions, self.verdicts, self.name, "check_share", ids)

    def solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        return min_step_scores(self.verdicts, question, solutions)

    def sibling_pairs_right(self, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
        return point_siblings_right(self.verdicts, pairs)
