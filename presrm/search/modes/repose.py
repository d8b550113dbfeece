"""The re-posing judge: a step scores the share of its re-posed checks whose answers agree
(presrm.search.repose_judge)."""

from __future__ import annotations

from collections.abc import Sequence

from presrm.config import JudgeConfig
from presrm.model.generation import StepSample
from presrm.model.policy import Policy
from presrm.search.judge import PairRequest
from presrm.search.modes.base import Context, GapSolution, JudgeMode
from presrm.search.modes.expansion_scores import score_points
from presrm.search.modes.solution_scores import min_step_scores, point_siblings_right
from presrm.search.repose_judge import MODE, SCORE_KIND, ReposeJudge
from presrm.search.tree import Expansion, IdSource, SearchSettings
from presrm.tasks.base import Task


class ReposeMode(JudgeMode):
    """Each candidate scored alone by its agreement share; a solution by its least step score."""

    no_verdict = "the accepted steps could not be re-posed (no readable progress)"

    def __init__(self, verdicts: ReposeJudge, *, propose: bool = False) -> None:
        super().__init__(verdicts, MODE)
        self.judge = verdicts
        self.propose = propose

    @classmethod
    def from_config(
        cls, policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int
    ) -> JudgeMode:
        return cls(
            ReposeJudge(
                policy,
                task,
                wordings=cfg.repose_wordings,
                span=cfg.repose_span,
                inverse=cfg.repose_inverse,
                max_step_tokens=max_step_tokens,
                max_rows=max(64, cfg.batch_size),
            ),
            propose=cfg.repose_propose,
        )

    @classmethod
    def gap_variants(cls, name: str) -> dict[str, dict[str, str]]:
        return {
            f"{name}-rest": {"mode": name, "repose_span": "rest"},
            f"{name}-step": {"mode": name, "repose_span": "step"},
        }

    def first_candidates(self, contexts: Sequence[Context]) -> list[list[StepSample]] | None:
        return self.judge.first_candidates(contexts) if self.propose else None

    def score(self, expansions: Sequence[Expansion], ids: IdSource, settings: SearchSettings) -> None:
        score_points(expansions, self.verdicts, self.name, SCORE_KIND, ids)

    def solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        return min_step_scores(self.verdicts, question, solutions)

    def sibling_pairs_right(self, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
        return point_siblings_right(self.verdicts, pairs)
