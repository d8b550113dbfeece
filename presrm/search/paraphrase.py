"""The paraphrase judge: a step scores the share of question wordings under which the policy
writes it.

The task rewrites the question (same numbers and operations, other names, items and phrasing);
the policy writes its greedy next step after the accepted prefix under the question and under
each rewrite; a candidate's score is the share of those greedy steps that are the same step.
No labels: only the policy and the question's text. A step the model writes under most
wordings does not hang on the surface of one question, so the vote knows more than the
model's mode under the question alone — which is all the likelihood comparison knows.

In the search, the greedy steps themselves are the first candidates (the question's own greedy
step first), so the winning step is always one of them; see ``tree_search``.

Five votes give a coarse score (six levels), and most chosen steps win them all, so the graded
score a solution is ranked and calibrated by is the step's probability under the policy,
averaged over the same wordings (``wording_probs``): the vote's soft version.
"""

from __future__ import annotations

import math
from collections import Counter

from presrm.model.generation import StepSample, generate_steps
from presrm.model.policy import Policy
from presrm.model.scoring import sequence_logprobs
from presrm.search.judge import JudgeResult, PairRequest, PointRequest
from presrm.steps import parse_step, render_prefix, step_content, step_header
from presrm.tasks.base import Task

MODE = "paraphrase"
# What the search picks a step by: the share of votes, or the graded wording probability.
SELECT_BY = ("votes", "probability")


def same_step_key(step_text: str) -> str:
    """What two steps must share to count as the same vote: the content, headers and spacing aside."""
    return step_content(step_text)


class ParaphraseJudge:
    """Scores steps by agreement with the policy's greedy steps under rewritten questions."""

    mode: str = MODE

    def __init__(
        self,
        policy: Policy,
        task: Task,
        *,
        paraphrases: int,
        seed: int,
        max_step_tokens: int,
        select_by: str = "votes",
        batch_size: int = 32,
    ) -> None:
        if select_by not in SELECT_BY:
            raise ValueError(f"select_by: expected one of {', '.join(SELECT_BY)}, got {select_by!r}")
        self.policy = policy
        self.task = task
        self.paraphrases = paraphrases
        self.seed = seed
        self.max_step_tokens = max_step_tokens
        self.select_by = select_by
        self.batch_size = batch_size
        self._variants: dict[str, list[str]] = {}

    def variants(self, question: str) -> list[str]:
        """The question, then its rewrites (cached: every round of a tree asks again)."""
        if question not in self._variants:
            rewrites = self.task.rewrite_question(question, self.paraphrases, self.seed)
            self._variants[question] = [question, *rewrites]
        return self._variants[question]

    def votes(self, items: list[tuple[str, tuple[str, ...]]]) -> list[list[StepSample]]:
        """For each (question, accepted steps): the greedy next step under every variant of the
        question, the question's own first. All variants of all items in one batched call."""
        prefixes: list[str] = []
        sizes: list[int] = []
        for question, previous in items:
            header = step_header(len(previous) + 1)
            variants = self.variants(question)
            sizes.append(len(variants))
            for variant in variants:
                prefixes.append(
                    render_prefix(
                        self.policy.solution_prompt(variant), list(previous), self.policy.step_format
                    )
                    + header
                )
        flat = generate_steps(
            self.policy, prefixes, 1, temperature=0.0, max_new_tokens=self.max_step_tokens, seed=0
        )
        out: list[list[StepSample]] = []
        start = 0
        for size in sizes:
            out.append([samples[0] for samples in flat[start : start + size]])
            start += size
        return out

    def wording_probs(self, items: list[tuple[str, tuple[str, ...], list[str]]]) -> list[dict[str, float]]:
        """For each (question, accepted steps, candidate steps): every candidate's probability
        under the policy after the accepted steps, averaged over the question and its rewrites.
        Each wording's prefix is encoded once for all of its candidates (shared-prefix scoring)."""
        items = [(q, prev, list(dict.fromkeys(c))) for q, prev, c in items]
        prompts: list[str] = []
        continuations: list[str] = []
        fmt = self.policy.step_format
        for question, previous, candidates in items:
            for variant in self.variants(question):
                prefix = render_prefix(self.policy.solution_prompt(variant), list(previous), fmt)
                for text in candidates:
                    prompts.append(prefix)
                    continuations.append(text + fmt.separator)
        logprobs = iter(sequence_logprobs(self.policy, prompts, continuations, batch_size=self.batch_size))
        out: list[dict[str, float]] = []
        for question, _previous, candidates in items:
            sums = dict.fromkeys(candidates, 0.0)
            n_variants = len(self.variants(question))
            for _variant in range(n_variants):
                for text in candidates:
                    sums[text] += math.exp(next(logprobs))
            out.append({text: total / n_variants for text, total in sums.items()})
        return out

    def _vote_counts(
        self, items: list[tuple[str, tuple[str, ...]]]
    ) -> dict[tuple[str, tuple[str, ...]], Counter[str]]:
        unique = list(dict.fromkeys(items))
        counts: dict[tuple[str, tuple[str, ...]], Counter[str]] = {}
        for item, samples in zip(unique, self.votes(unique), strict=True):
            k = len(item[1]) + 1
            counts[item] = Counter(
                same_step_key(
                    parse_step(s.text, k, truncated=s.finish == "length", fmt=self.policy.step_format).text
                )
                for s in samples
            )
        return counts

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        """A beats B when more of the votes wrote A; equal shares (also none) are no verdict."""
        counts = self._vote_counts([(r.question, r.previous_steps) for r in requests])
        results = []
        for r in requests:
            votes = counts[(r.question, r.previous_steps)]
            total = sum(votes.values())
            a, b = votes[same_step_key(r.step_a)], votes[same_step_key(r.step_b)]
            verdict = "A" if a > b else "B" if b > a else None
            raw = f"{a} of {total} wordings wrote A, {b} wrote B"
            results.append(JudgeResult(verdict, raw, None, a / total, b / total))
        return results

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        """P(correct) read as the step's vote share; Yes when at least half of the votes wrote it."""
        counts = self._vote_counts([(r.question, r.previous_steps) for r in requests])
        results = []
        for r in requests:
            votes = counts[(r.question, r.previous_steps)]
            total = sum(votes.values())
            share = votes[same_step_key(r.step)] / total
            raw = f"{votes[same_step_key(r.step)]} of {total} wordings wrote this step"
            results.append(JudgeResult("Yes" if share >= 0.5 else "No", raw, None, share, 1.0 - share))
        return results


def vote_shares(nodes_texts: list[str], n_votes: int) -> dict[str, float]:
    """Share of the first ``n_votes`` texts (the votes) equal to each text, by step content."""
    counts = Counter(same_step_key(t) for t in nodes_texts[:n_votes])
    return {t: counts[same_step_key(t)] / n_votes for t in nodes_texts}
