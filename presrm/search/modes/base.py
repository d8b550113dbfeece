"""What a judge mode contributes, behind one interface.

The search (presrm.search.tree_search), the verifier-gap table (presrm.eval.verifier_gap), the
held-out judge evaluation (presrm.eval.judge_eval), the warm-up's judge examples
(presrm.train.eft) and the empty-stage message (presrm.run.empty_stage) call a :class:`JudgeMode`
and never ask for a mode's name. A mode is built around a verdict source
(presrm.search.judge.StepJudge: judged pairs and judged single steps) and says:

- its own first candidates of an expansion, if any (``first_candidates``: the paraphrase votes);
- a score per candidate, its graded score, its ``judgments`` rows and its score kind (``score``);
- how it ranks whole solutions for best-of-k, and its graded ranking if it has one
  (``solution_scores``, ``graded_solution_scores``), how it decides on-policy sibling pairs
  (``sibling_pairs_right``), and a step-search row of its own for the verifier-gap table
  (``gap_search``);
- how it is measured on held-out pairs (``held_out``: both orders of each pair, or each distinct
  step alone) and which prompt form the warm-up trains it in (``eft_form``);
- what a judgment without a verdict means (``no_verdict``, for the empty-stage message).

A new mode is one module in this package plus one entry in ``presrm.search.judges.MODES`` (and its
name in ``JudgeConfig.mode``). For example a ``repose`` mode (a candidate step scores by whether
the policy's own solve of the rest of the problem, re-posed as a fresh question from the step's
result, agrees with it) would implement:

- ``from_config``: its verdict source (the policy, the task that re-poses questions, the step
  token limit) from the run's judge config;
- ``score``: re-pose and solve after each distinct candidate of every expansion (all batched),
  append one ``Judgment`` per check whose ``raw_output`` holds the re-posed question and the
  model's answer, and set ``Expansion.scores`` and every node's ``self_score``, ``score_kind``
  (e.g. ``"repose_agree"``) and graded ``soft_score`` (presrm.search.modes.expansion_scores
  helps when each candidate gets one row);
- ``solution_scores`` (e.g. each solution's least step score: ``solution_scores.min_step_scores``)
  and, for its graded score, ``graded_solution_scores``;
- ``sibling_pairs_right`` (``solution_scores.point_siblings_right`` when it scores steps alone);
- ``held_out`` / ``eft_form`` / ``no_verdict`` when the defaults do not fit.

Everything downstream (``auroc_min`` and calibration from ``soft_score``, held-out accuracy
from the stored pairs) reads the rows, not the mode.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Protocol

from presrm.config import JudgeConfig
from presrm.model.generation import StepSample
from presrm.model.policy import Policy
from presrm.search.judge import PairRequest, StepJudge
from presrm.search.tree import Expansion, IdSource, SearchSettings
from presrm.tasks.base import Task

HELD_OUT_PAIRS = "pairs"  # both orders of every held-out pair, through the verdict source's pairwise
HELD_OUT_STEPS = "steps"  # each distinct step of the held-out pairs alone, through its pointwise
EFT_PAIRWISE = "pairwise"  # the warm-up trains the [[A]]/[[B]] prompt (with a check if judge.check)
EFT_POINTWISE = "pointwise"  # the warm-up trains Yes/No to "is this next step correct?"
UNPARSEABLE = "judge verdicts unparseable"

Context = tuple[str, tuple[str, ...]]
"""A question and the accepted steps after it."""


class GapSolution(Protocol):
    """What a mode reads of a sampled solution (presrm.eval.verifier_gap.Solution)."""

    @property
    def steps(self) -> tuple[str, ...]: ...

    @property
    def logprob(self) -> float: ...


class JudgeMode(ABC):
    """One judge mode: its verdict source and what it contributes (see the module doc)."""

    eft_form: ClassVar[str] = EFT_PAIRWISE
    held_out: ClassVar[str] = HELD_OUT_PAIRS
    no_verdict: ClassVar[str] = UNPARSEABLE

    def __init__(self, verdicts: StepJudge, name: str) -> None:
        self.verdicts = verdicts
        self.name = name  # judgments.mode of every row it writes

    @classmethod
    @abstractmethod
    def from_config(
        cls, policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int
    ) -> JudgeMode:
        """The policy as its own judge in this mode."""

    @classmethod
    def gap_variants(cls, name: str) -> dict[str, dict[str, str]]:
        """The verifier-gap table's names for this mode, each with the judge config fields it sets."""
        return {name: {"mode": name}}

    def first_candidates(self, contexts: Sequence[Context]) -> list[list[StepSample]] | None:
        """Candidate next steps of its own, the first of each expansion (None: only samples)."""
        return None

    @abstractmethod
    def score(self, expansions: Sequence[Expansion], ids: IdSource, settings: SearchSettings) -> None:
        """Judge the distinct candidates of every expansion (batched): append the judgments to each
        tree, set ``Expansion.scores`` and each node's self_score, score_kind and soft_score."""

    @abstractmethod
    def solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        """A score per solution: best-of-k picks the highest."""

    def graded_solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float] | None:
        """A graded score per solution for a second best-of-k row (None: no such row)."""
        return None

    @abstractmethod
    def sibling_pairs_right(self, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
        """For each (pair, step A is the right one): does the judge prefer the right step?"""

    def gap_search(self, base: SearchSettings) -> tuple[str, SearchSettings] | None:
        """A step-search row of the verifier-gap table: its name and settings (None: no row)."""
        return None
