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
from presrm.search.judge import PairRequest
from presrm.search.judges import gap_modes, make_judge
from presrm.search.modes.base import JudgeMode
from presrm.search.modes.solution_scores import divergence
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.tasks.base import Problem, Task

# Each mode's names in the table (the pairwise judge twice: its written verdict and its P(A)/P(B)).
JUDGE_MODES = tuple(gap_modes())


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


def _sibling_pairs(question: str, solutions: Sequence[Solution]) -> list[tuple[PairRequest, bool]]:
    """Distinct on-policy sibling steps, one right and one wrong by the checker: (request, A is right)."""
    seen: set[tuple[tuple[str, ...], str, str]] = set()
    out = []
    for i, a in enumerate(solutions):
        for b in solutions[i + 1 :]:
            d = divergence(a, b)
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


def _judge_for(policy: Policy, task: Task, mode: str, check: bool, max_step_tokens: int) -> JudgeMode:
    """The policy as judge under the table's name ``mode``, built as a run builds it."""
    cfg = JudgeConfig.model_validate({**gap_modes()[mode], "check": check})
    return make_judge(policy, cfg, task, max_step_tokens=max_step_tokens, seed=0)


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
        picks: list[bool] = []
        siblings: list[bool] = []
        graded: list[bool] | None = None  # stays None for a mode without a graded score
        for problem, per in zip(problems, samples, strict=True):
            picks.append(per[_argmax(judge.solution_scores(problem.question, per))].correct)
            siblings += judge.sibling_pairs_right(_sibling_pairs(problem.question, per))
            scores = judge.graded_solution_scores(problem.question, per)
            if scores is not None:
                graded = [*(graded or []), per[_argmax(scores)].correct]
        table.outcomes[f"best-of-{k}: {mode}"] = picks
        table.sibling_pairs[mode] = siblings
        if graded is not None:
            table.outcomes[f"best-of-{k}: {mode}, graded"] = graded
        searched = judge.gap_search(
            SearchSettings(max_steps=max_steps, max_step_tokens=max_step_tokens, seed=seed)
        )
        if searched is not None:
            name, settings = searched
            trees = search(policy, judge, task, list(problems), settings, LocalIds())
            table.outcomes[name] = [t.correct for t in trees]
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
