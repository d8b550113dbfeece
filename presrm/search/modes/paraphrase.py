"""The paraphrase mode: the policy's greedy steps under the question and its rewrites are the first
candidates and vote; the graded score is a step's probability averaged over the same wordings
(presrm.search.paraphrase)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from presrm.config import JudgeConfig
from presrm.model.generation import StepSample
from presrm.model.policy import Policy
from presrm.search.judge import PairRequest
from presrm.search.modes.base import Context, GapSolution, JudgeMode
from presrm.search.modes.solution_scores import min_step_scores, point_siblings_right
from presrm.search.paraphrase import MODE, ParaphraseJudge, vote_shares
from presrm.search.tree import Expansion, IdSource, Judgment, SearchSettings
from presrm.tasks.base import Task


class ParaphraseMode(JudgeMode):
    """Votes as candidates and scores; best-of-k by the least step vote share, or graded by the
    least wording-averaged step probability."""

    verdicts: ParaphraseJudge

    def __init__(self, verdicts: ParaphraseJudge) -> None:
        super().__init__(verdicts, MODE)

    @classmethod
    def from_config(
        cls, policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int
    ) -> JudgeMode:
        # The task rewrites the questions; the votes are written with the run's step token limit.
        return cls(
            ParaphraseJudge(
                policy,
                task,
                paraphrases=cfg.paraphrases,
                seed=seed,
                max_step_tokens=max_step_tokens,
                select_by=cfg.paraphrase_select,
                batch_size=cfg.batch_size,
            )
        )

    def first_candidates(self, contexts: Sequence[Context]) -> list[list[StepSample]] | None:
        return self.verdicts.votes(list(contexts))

    def score(self, expansions: Sequence[Expansion], ids: IdSource, settings: SearchSettings) -> None:
        graded = self.verdicts.wording_probs(
            [(g.question, g.previous, [n.text for n in g.distinct]) for g in expansions]
        )
        for g, probs in zip(expansions, graded, strict=True):
            self._score_votes(g, probs, ids)

    def _score_votes(self, g: Expansion, probs: dict[str, float], ids: IdSource) -> None:
        """Score every candidate by its share of the votes (the first ``n_first`` nodes: the greedy
        steps under the question and its rewrites) and, graded, by its probability averaged over the
        same wordings (``probs``); the search selects by the one ``select_by`` names. One judgment
        row per distinct candidate."""
        n_votes = g.n_first
        shares = vote_shares([n.text for n in g.nodes], n_votes)
        for jid, n in zip(ids.new_ids("judgment", len(g.distinct)), g.distinct, strict=True):
            share = shares[n.text]
            expected = None if n.step_check is None else ("Yes" if n.step_check else "No")
            verdict = "Yes" if share >= 0.5 else "No"
            raw = (
                f"{round(share * n_votes)} of {n_votes} wordings wrote this step; mean P {probs[n.text]:.4f}"
            )
            winner = n.node_id if verdict == "Yes" else None
            g.tree.judgments.append(
                Judgment(
                    jid,
                    self.name,
                    n.node_id,
                    None,
                    0,
                    None,
                    raw,
                    verdict,
                    share,
                    1.0 - share,
                    winner,
                    expected,
                )
            )
        by_probability = self.verdicts.select_by == "probability"
        selected = probs if by_probability else shares
        g.scores = {n.text: selected[n.text] for n in g.distinct}
        for n in g.nodes:
            n.self_score = selected[n.text]
            n.soft_score = probs[n.text]
            n.score_kind = "wording_prob" if by_probability else "vote_share"

    def solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        return min_step_scores(self.verdicts, question, solutions)

    def graded_solution_scores(self, question: str, solutions: Sequence[GapSolution]) -> list[float]:
        """Each solution's least step probability averaged over the question's wordings (1.0 for a
        solution without steps)."""
        items = [(question, s.steps[:d], [step]) for s in solutions for d, step in enumerate(s.steps)]
        probs = iter(self.verdicts.wording_probs(items))
        scores = []
        for s in solutions:
            step_probs = [next(iter(next(probs).values())) for _ in s.steps]  # one candidate per item
            scores.append(min(step_probs, default=1.0))
        return scores

    def sibling_pairs_right(self, pairs: Sequence[tuple[PairRequest, bool]]) -> list[bool]:
        return point_siblings_right(self.verdicts, pairs)

    def gap_search(self, base: SearchSettings) -> tuple[str, SearchSettings]:
        """The step search as a run does it: the votes are the candidates, the question's own greedy
        step kept unless another wrote more votes."""
        settings = replace(
            base, width=self.verdicts.paraphrases + 1, greedy_candidate=True, switch_margin=0.0
        )
        return "step search: paraphrase votes", settings
