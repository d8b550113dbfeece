"""Step-wise LLM-as-a-judge: the policy judges its own candidate next steps.

Pairwise (the paper's): one call per ordered pair; the search asks for both orders.
The judge writes (greedily) an optional check — several lines if it likes — and a verdict
``[[A]]``/``[[B]]``; its text ends after the verdict's closing ``]]`` (or at
``max_judge_tokens``). The probabilities of the ``A``/``B`` tokens at the verdict's position
are read as well (right after an appended ``[[`` when the judge wrote no verdict), so every
judgment stores both, ``JudgeConfig.verdict`` picks which one counts, and the result says
which did (``verdict_source``) and where the probabilities were read (``probs_at``).

Pointwise (a cheaper baseline): P(Yes) to "is this next step correct?", one forward
pass per candidate, no generation.

Likelihood: the pair is decided by the policy's own log-probability of each step after
the accepted prefix (no judge prompt, no LLM-as-a-judge); both orders give the same verdict.
Its judgments are stored as mode ``likelihood``, never as ``pairwise``.

All calls of one search round are batched: generation for every pair of every
problem in one ``generate_steps`` call, the verdict probabilities in one batched
forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from presrm.config import JudgeConfig
from presrm.judge_format import (
    POINTWISE_TOKENS,
    VERDICT_TOKENS,
    pairwise_user_text,
    parse_pairwise,
    pointwise_user_text,
    verdict_end,
    verdict_position,
)
from presrm.model.generation import FINISH_STOP, StopRule, generate_steps
from presrm.model.policy import Policy
from presrm.model.scoring import next_token_logprobs, sequence_logprobs
from presrm.steps import render_prefix, step_header

# The judge's text ends after its verdict's closing "]]"; lines of a check do not end it.
VERDICT_STOP = StopRule(verdict_end, "]", FINISH_STOP)

SOURCE_TEXT = "text"  # the verdict was read from the judge's written [[A]]/[[B]]
SOURCE_PROBS = "probs"  # from P(A) vs P(B) (pointwise: P(Yes) vs P(No))
SOURCE_LOGPROB = "logprob"  # the likelihood comparison: the policy's log-prob of each step


@dataclass(frozen=True)
class PairRequest:
    """Judge which of two next steps is better; ``step_a`` is shown first."""

    question: str
    previous_steps: tuple[str, ...]
    step_a: str
    step_b: str


@dataclass(frozen=True)
class PointRequest:
    """Judge whether one next step is correct."""

    question: str
    previous_steps: tuple[str, ...]
    step: str


@dataclass(frozen=True)
class JudgeResult:
    """One judge call. For pointwise, ``verdict`` is Yes/No and ``p_a``/``p_b`` are P(Yes)/P(No)."""

    verdict: str | None
    raw_output: str
    check_text: str | None
    p_a: float | None
    p_b: float | None
    verdict_source: str | None = None  # SOURCE_*: what the verdict came from; None without one
    probs_at: str | None = None  # pairwise: "verdict" | "appended" (judge_format.PROBS_AT_*)


class StepJudge(Protocol):
    """What the search needs from a judge (the model judge, or a scripted verdict source in tests)."""

    mode: str

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]: ...

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]: ...


def _two_way(logp_x: float, logp_y: float) -> tuple[float, float]:
    """Renormalise two log-probs into probabilities that sum to 1."""
    m = max(logp_x, logp_y)
    ex, ey = math.exp(logp_x - m), math.exp(logp_y - m)
    return ex / (ex + ey), ey / (ex + ey)


def resolve_judge_mode(mode: str, chat: bool) -> str:
    """``auto``: the paper's pairwise prompt for chat models; for raw (non-chat) models such as
    the embedded character-level default, which were never taught to follow a judge prompt
    before their warm-up, the likelihood comparison."""
    if mode != "auto":
        return mode
    return "pairwise" if chat else "likelihood"


class ModelJudge:
    """The policy model acting as its own step judge."""

    def __init__(self, policy: Policy, config: JudgeConfig, *, batch_size: int | None = None) -> None:
        self.policy = policy
        self.config = config
        self.mode: str = resolve_judge_mode(config.mode, policy.chat)
        self.batch_size = batch_size or config.batch_size

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        if not requests:
            return []
        if self.mode == "likelihood":
            return self._likelihood(requests)
        prompts = [
            self.policy.complete_prompt(
                pairwise_user_text(r.question, list(r.previous_steps), r.step_a, r.step_b)
            )
            for r in requests
        ]
        # Without a check the judge only needs room for "[[A]]".
        max_tokens = self.config.max_judge_tokens if self.config.check else 8
        generated = generate_steps(
            self.policy,
            prompts,
            1,
            temperature=0.0,
            max_new_tokens=max_tokens,
            seed=0,
            max_rows=self.batch_size,
            stop=VERDICT_STOP,
        )
        raws = [samples[0].text for samples in generated]
        # Read P(A) vs P(B) at the verdict the judge wrote, or after an appended "[[" when it
        # wrote none, so a probability verdict exists even for unparseable text.
        positions = [verdict_position(raw) for raw in raws]
        logps = next_token_logprobs(
            self.policy,
            [p + prefix for p, (prefix, _) in zip(prompts, positions, strict=True)],
            list(VERDICT_TOKENS),
            batch_size=self.batch_size,
        )
        results = []
        for raw, (_, probs_at), row in zip(raws, positions, logps.tolist(), strict=True):
            parsed = parse_pairwise(raw)
            p_a, p_b = _two_way(row[0], row[1])
            if self.config.verdict == "text":
                verdict, source = parsed.verdict, SOURCE_TEXT if parsed.verdict else None
            else:
                verdict, source = ("A" if p_a >= p_b else "B"), SOURCE_PROBS
            results.append(JudgeResult(verdict, raw, parsed.check_text, p_a, p_b, source, probs_at))
        return results

    def _likelihood(self, requests: list[PairRequest]) -> list[JudgeResult]:
        """Prefer the step the policy itself finds likelier after the accepted prefix.

        Scores log P(step content + line end | question, accepted steps, "Step k:") — the
        model's own confidence in each candidate (ranking is easier than generating: for a
        small model this separates right from wrong steps where its written verdicts are at
        chance; README, "The embedded default model"). Each distinct (prefix, step) is scored once.
        """
        prompts, continuations, pairs = self.likelihood_rows(requests)
        logps = sequence_logprobs(self.policy, prompts, continuations, batch_size=self.batch_size)
        results = []
        for ia, ib in pairs:
            a, b = logps[ia], logps[ib]
            p_a, p_b = _two_way(a, b)
            verdict = "A" if a >= b else "B"
            raw = f"logp(A)={a:.4f} logp(B)={b:.4f}"
            results.append(JudgeResult(verdict, raw, None, p_a, p_b, SOURCE_LOGPROB))
        return results

    def likelihood_rows(
        self, requests: list[PairRequest]
    ) -> tuple[list[str], list[str], list[tuple[int, int]]]:
        """The distinct (prompt, continuation) rows the likelihood comparison scores, and per
        request the rows of its steps A and B."""
        keys: dict[tuple[str, str], int] = {}
        prompts: list[str] = []
        continuations: list[str] = []

        def index(req: PairRequest, step: str) -> int:
            k = len(req.previous_steps) + 1
            fmt = self.policy.step_format
            prefix = render_prefix(self.policy.solution_prompt(req.question), list(req.previous_steps), fmt)
            prefix += step_header(k)
            body = step[len(step_header(k)) :] if step.startswith(step_header(k)) else " " + step
            key = (prefix, body)
            if key not in keys:
                keys[key] = len(prompts)
                prompts.append(prefix)
                continuations.append(body + fmt.separator)
            return keys[key]

        pairs = [(index(r, r.step_a), index(r, r.step_b)) for r in requests]
        return prompts, continuations, pairs

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        if not requests:
            return []
        prompts = [
            self.policy.complete_prompt(pointwise_user_text(r.question, list(r.previous_steps), r.step))
            for r in requests
        ]
        logps = next_token_logprobs(self.policy, prompts, list(POINTWISE_TOKENS), batch_size=self.batch_size)
        results = []
        for row in logps.tolist():
            p_yes, p_no = _two_way(row[0], row[1])
            verdict = POINTWISE_TOKENS[0] if p_yes >= p_no else POINTWISE_TOKENS[1]
            results.append(JudgeResult(verdict, verdict, None, p_yes, p_no, SOURCE_PROBS))
        return results
