"""The verifier-gap table: can a model's own judgment pick right solutions better than its mode?

On held-out problems, for one model: greedy accuracy, one sample, maj@k, pass@k, and best-of-k as
picked by each judge mode next to the oracles (any right answer; every step passing the task's
step checker). Plus each judge's accuracy on *on-policy sibling pairs*: two of the model's own
sampled solutions that share a prefix and then diverge into one step the checker accepts and one
it rejects — the choice the step search actually faces, not a corrupted EFT pair.

A setting can show a self-rewarding gain only where some judge's best-of-k beats greedy: this
table says so before anything is trained.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field

from presrm.config import JudgeConfig
from presrm.intervals import Interval, paired_difference, wilson_interval
from presrm.model.policy import Policy
from presrm.search.check_judge import CheckJudge
from presrm.search.judge import ModelJudge, PairRequest, PointRequest, StepJudge
from presrm.search.paraphrase import ParaphraseJudge
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.tasks.base import Problem, Task

PARAPHRASES = JudgeConfig().paraphrases

JUDGE_MODES = ("likelihood", "pointwise", "pairwise-text", "pairwise-probs", "paraphrase", "check")
SCORING_MODES = ("pointwise", "paraphrase", "check")  # judges that score each step on its own


@dataclass(frozen=True)
class Solution:
    """One sampled solution: its steps with their checker verdicts and log-probabilities."""

    steps: tuple[str, ...]
    step_checks: tuple[bool | None, ...]
    logprob: float
    final_answer: str | None
    correct: bool

    @classmethod
    def of(cls, tree: Tree) -> Solution:
        final = tree.final
        return cls(
            tuple(n.text for n in tree.path),
            tuple(n.step_check for n in tree.path),
            sum(n.logprob for n in tree.path),
            final.final_answer if final else None,
            tree.correct,
        )

    @property
    def checker_clean(self) -> bool:
        """Every step passes the step checker and the solution ends in an answer."""
        return self.final_answer is not None and all(c is True for c in self.step_checks)


@dataclass
class GapTable:
    """Per-problem outcomes of every selector (paired: the same problems in every row)."""

    k: int
    temperature: float
    outcomes: dict[str, list[bool]] = field(default_factory=dict)
    sibling_pairs: dict[str, list[bool]] = field(default_factory=dict)
    one_sample: float | None = None

    def accuracy(self, name: str) -> Interval | None:
        rows = self.outcomes[name]
        return wilson_interval(sum(rows), len(rows))

    def gain_over_greedy(self, name: str) -> Interval | None:
        return paired_difference(self.outcomes[name], self.outcomes["greedy"])

    def rows(self) -> list[tuple[str, Interval | None, Interval | None]]:
        """(selector, accuracy, paired difference to greedy) in table order."""
        return [
            (n, self.accuracy(n), None if n == "greedy" else self.gain_over_greedy(n)) for n in self.outcomes
        ]


def sample_solutions(
    policy: Policy,
    task: Task,
    problems: Sequence[Problem],
    *,
    k: int,
    temperature: float,
    max_steps: int,
    max_step_tokens: int,
    seed: int = 0,
) -> tuple[list[Solution], list[list[Solution]]]:
    """Greedy solutions and ``k`` sampled ones per problem (step by step, width 1, no judge)."""

    def run(temp: float, run_seed: int) -> list[Tree]:
        settings = SearchSettings(
            width=1, max_steps=max_steps, temperature=temp, max_step_tokens=max_step_tokens, seed=run_seed
        )
        return search(policy, None, task, list(problems), settings, LocalIds())

    greedy = [Solution.of(t) for t in run(0.0, seed)]
    samples: list[list[Solution]] = [[] for _ in problems]
    for i in range(k):
        for per_problem, tree in zip(samples, run(temperature, seed + 1 + i), strict=True):
            per_problem.append(Solution.of(tree))
    return greedy, samples


def majority_index(solutions: Sequence[Solution]) -> int:
    """The first solution whose final answer is the most common one (0 when none has an answer)."""
    counts = collections.Counter(s.final_answer for s in solutions if s.final_answer is not None)
    if not counts:
        return 0
    top = counts.most_common(1)[0][0]
    return next(i for i, s in enumerate(solutions) if s.final_answer == top)


def _argmax(scores: Sequence[float]) -> int:
    return max(range(len(scores)), key=lambda i: (scores[i], -i))  # ties: the earlier sample


def _divergence(a: Solution, b: Solution) -> int | None:
    """Index of the first step where two solutions differ (None: one is a prefix of the other)."""
    for d, (x, y) in enumerate(zip(a.steps, b.steps, strict=False)):
        if x != y:
            return d
    return None


def _pointwise_scores(judge: StepJudge, question: str, solutions: Sequence[Solution]) -> list[float]:
    """Each solution's minimum P(Yes) over its steps (1.0 for a solution without steps)."""
    requests = [
        PointRequest(question, s.steps[:d], step) for s in solutions for d, step in enumerate(s.steps)
    ]
    results = iter(judge.pointwise(requests))
    scores = []
    for s in solutions:
        probs = [next(results).p_a or 0.0 for _ in s.steps]
        scores.append(min(probs, default=1.0))
    return scores


def _pair_requests(question: str, a: Solution, b: Solution, d: int) -> list[PairRequest]:
    prefix = a.steps[:d]
    return [
        PairRequest(question, prefix, a.steps[d], b.steps[d]),
        PairRequest(question, prefix, b.steps[d], a.steps[d]),
    ]


def _pairwise_scores(
    judge: StepJudge, question: str, solutions: Sequence[Solution], soft: bool
) -> list[float]:
    """Round robin at each pair's divergence step, both orders: a consistent win counts 1, an
    inconsistent or missing verdict ½ to each (``soft``: the judge's P(win) averaged over orders)."""
    pairs = [
        (i, j, d)
        for i in range(len(solutions))
        for j in range(i + 1, len(solutions))
        if (d := _divergence(solutions[i], solutions[j])) is not None
    ]
    requests = [r for i, j, d in pairs for r in _pair_requests(question, solutions[i], solutions[j], d)]
    results = judge.pairwise(requests)
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


def _judge_for(policy: Policy, task: Task, mode: str, check: bool, max_step_tokens: int) -> StepJudge:
    if mode == "check":
        return CheckJudge(policy)
    if mode == "paraphrase":
        return ParaphraseJudge(policy, task, paraphrases=PARAPHRASES, seed=0, max_step_tokens=max_step_tokens)
    base, _, verdict = mode.partition("-")
    return ModelJudge(policy, JudgeConfig(mode=base, verdict=verdict or "text", check=check))


def _vote_search(
    policy: Policy, task: Task, problems: Sequence[Problem], max_steps: int, max_step_tokens: int, seed: int
) -> list[bool]:
    """The step search as a run does it with the paraphrase judge: the votes are the candidates,
    the question's own greedy step kept unless another wrote more votes."""
    judge = _judge_for(policy, task, "paraphrase", False, max_step_tokens)
    settings = SearchSettings(
        width=PARAPHRASES + 1,
        max_steps=max_steps,
        max_step_tokens=max_step_tokens,
        seed=seed,
        greedy_candidate=True,
        switch_margin=0.0,
    )
    return [t.correct for t in search(policy, judge, task, list(problems), settings, LocalIds())]


def _sibling_pairs(question: str, solutions: Sequence[Solution]) -> list[tuple[PairRequest, bool]]:
    """Distinct on-policy sibling steps, one right and one wrong by the checker: (request, A is right)."""
    seen: set[tuple[tuple[str, ...], str, str]] = set()
    out = []
    for i, a in enumerate(solutions):
        for b in solutions[i + 1 :]:
            d = _divergence(a, b)
            if d is None or {a.step_checks[d], b.step_checks[d]} != {True, False}:
                continue
            low, high = sorted((a.steps[d], b.steps[d]))
            key = (a.steps[:d], low, high)
            if key not in seen:
                seen.add(key)
                out.append(
                    (PairRequest(question, a.steps[:d], a.steps[d], b.steps[d]), bool(a.step_checks[d]))
                )
    return out


def sibling_pair_accuracy(judge: StepJudge, question: str, solutions: Sequence[Solution]) -> list[bool]:
    """For each on-policy sibling pair: did the judge prefer the right step (pairwise: in both orders)?"""
    pairs = _sibling_pairs(question, solutions)
    if judge.mode in SCORING_MODES:
        requests = [
            PointRequest(r.question, r.previous_steps, s) for r, _ in pairs for s in (r.step_a, r.step_b)
        ]
        probs = [res.p_a or 0.0 for res in judge.pointwise(requests)]
        return [(probs[2 * n] > probs[2 * n + 1]) == a_right for n, (_, a_right) in enumerate(pairs)]
    swapped = [PairRequest(r.question, r.previous_steps, r.step_b, r.step_a) for r, _ in pairs]
    results = judge.pairwise([r for r, _ in pairs] + swapped)
    first, second = results[: len(pairs)], results[len(pairs) :]
    right = []
    for (_, a_right), r0, r1 in zip(pairs, first, second, strict=True):
        want = ("A", "B") if a_right else ("B", "A")
        right.append((r0.verdict, r1.verdict) == want)
    return right


def graded_scores(judge: ParaphraseJudge, question: str, solutions: Sequence[Solution]) -> list[float]:
    """Each solution's least step probability averaged over the question's wordings (the paraphrase
    judge's graded score; 1.0 for a solution without steps)."""
    items = [(question, s.steps[:d], [step]) for s in solutions for d, step in enumerate(s.steps)]
    probs = iter(judge.wording_probs(items))
    scores = []
    for s in solutions:
        step_probs = [next(iter(next(probs).values())) for _ in s.steps]  # one candidate per item
        scores.append(min(step_probs, default=1.0))
    return scores


def verifier_gap(
    policy: Policy,
    task: Task,
    problems: Sequence[Problem],
    *,
    k: int = 8,
    temperature: float = 0.8,
    max_steps: int = 10,
    max_step_tokens: int = 48,
    modes: Sequence[str] = JUDGE_MODES,
    check: bool = True,
    seed: int = 0,
) -> GapTable:
    """The verifier-gap table of ``policy`` on ``problems`` (see the module doc)."""
    unknown = [m for m in modes if m not in JUDGE_MODES]
    if unknown:
        raise ValueError(f"unknown judge mode(s) {unknown}; known: {', '.join(JUDGE_MODES)}")
    greedy, samples = sample_solutions(
        policy,
        task,
        problems,
        k=k,
        temperature=temperature,
        max_steps=max_steps,
        max_step_tokens=max_step_tokens,
        seed=seed,
    )
    table = GapTable(k, temperature)
    table.one_sample = sum(s.correct for per in samples for s in per) / max(1, k * len(problems))
    table.outcomes["greedy"] = [s.correct for s in greedy]
    table.outcomes[f"maj@{k}"] = [per[majority_index(per)].correct for per in samples]
    for mode in modes:
        judge = _judge_for(policy, task, mode, check, max_step_tokens)
        picks, siblings, graded = [], [], []
        for problem, per in zip(problems, samples, strict=True):
            if mode == "likelihood":
                scores = [s.logprob for s in per]
            elif judge.mode in SCORING_MODES:
                scores = _pointwise_scores(judge, problem.question, per)
            else:
                scores = _pairwise_scores(judge, problem.question, per, soft=mode.endswith("probs"))
            picks.append(per[_argmax(scores)].correct)
            siblings += sibling_pair_accuracy(judge, problem.question, per)
            if isinstance(judge, ParaphraseJudge):
                graded.append(per[_argmax(graded_scores(judge, problem.question, per))].correct)
        table.outcomes[f"best-of-{k}: {mode}"] = picks
        table.sibling_pairs[mode] = siblings
        if mode == "paraphrase":
            table.outcomes[f"best-of-{k}: paraphrase, graded"] = graded
            table.outcomes["step search: paraphrase votes"] = _vote_search(
                policy, task, problems, max_steps, max_step_tokens, seed
            )
    table.outcomes[f"oracle best-of-{k}: step checker"] = [
        next((s.correct for s in per if s.checker_clean), per[0].correct) for per in samples
    ]
    table.outcomes[f"pass@{k}"] = [any(s.correct for s in per) for per in samples]
    return table


def format_table(table: GapTable) -> list[str]:
    """Markdown lines: accuracies with 95 % intervals, paired gains over greedy, sibling-pair accuracy."""
    lines = [
        f"| selector (k = {table.k}, T = {table.temperature}) | accuracy [95 %] | − greedy, paired [95 %] |",
        "|---|---:|---:|",
    ]
    for name, acc, gain in table.rows():
        acc_text = (
            "–" if acc is None else f"{100 * acc.estimate:.1f} [{100 * acc.low:.1f}, {100 * acc.high:.1f}]"
        )
        gain_text = (
            ""
            if gain is None
            else f"{100 * gain.estimate:+.1f} [{100 * gain.low:+.1f}, {100 * gain.high:+.1f}]"
        )
        lines.append(f"| {name} | {acc_text} | {gain_text} |")
    if table.one_sample is not None:
        lines.append(f"| one sample (mean of {table.k}) | {100 * table.one_sample:.1f} | |")
    lines += ["", "| judge | on-policy sibling pairs right (both orders) [95 %] | pairs |", "|---|---:|---:|"]
    for mode, right in table.sibling_pairs.items():
        ci = wilson_interval(sum(right), len(right))
        text = "–" if ci is None else f"{100 * ci.estimate:.1f} [{100 * ci.low:.1f}, {100 * ci.high:.1f}]"
        lines.append(f"| {mode} | {text} | {len(right)} |")
    return lines
