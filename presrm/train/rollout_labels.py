"""Math-Shepherd-style step labels: rollouts from each prefix of sampled solutions.

For every problem the policy samples a solution step by step; at each of its prefixes it
samples ``width`` candidate next steps (the solution goes on with the first). A candidate
that states a final answer is labeled by the task's answer check; any other gets ``rollouts``
completions sampled from it to a final answer (at most ``max_steps`` steps in all), and its
labels are the *hard* estimate (some completion reaches the gold answer) and the *soft*
estimate (the fraction that do). No step checker is used; where the task has one, its
verdict is kept next to the labels (``StepLabel.checker``) to measure them.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field

from presrm.model.generation import StepSample, generate_steps
from presrm.model.policy import Policy
from presrm.steps import STATUS_EMPTY, STATUS_RUNAWAY, parse_step, render_prefix, step_header
from presrm.tasks.base import Problem, Task


@dataclass(frozen=True)
class RolloutSettings:
    """How solutions, candidates and rollouts are sampled."""

    rollouts: int = 8
    width: int = 4
    temperature: float = 0.7
    top_p: float = 0.95
    max_step_tokens: int = 48
    max_steps: int = 10
    seed: int = 0


@dataclass
class StepLabel:
    """One candidate step after ``previous`` (full step texts) with its rollout labels.

    ``outcomes``: whether each rollout reached the gold answer (empty for a final step,
    whose label is its own answer check). ``checker``: the task's step checker, if any.
    """

    problem: Problem
    previous: tuple[str, ...]
    text: str
    is_final: bool
    usable: bool  # not empty, not cut off by the token limit
    outcomes: list[bool] = field(default_factory=list)
    rollout_tokens: list[int] = field(default_factory=list)  # tokens each rollout generated
    final_correct: bool | None = None
    checker: bool | None = None

    def soft(self, r: int | None = None) -> float:
        """Fraction of the first ``r`` rollouts (all by default) that reached the gold answer."""
        if self.is_final:
            return 1.0 if self.final_correct else 0.0
        shown = self.outcomes[:r] if r is not None else self.outcomes
        return sum(shown) / len(shown) if shown else 0.0

    def hard(self, r: int | None = None) -> bool:
        return self.soft(r) > 0.0


@dataclass
class RolloutCost:
    """What the labels cost: rollouts, their generated steps and tokens, wall seconds."""

    rollouts: int = 0
    rollout_steps: int = 0
    rollout_tokens: int = 0
    seconds: float = 0.0


@dataclass
class _Rollout:
    label: StepLabel
    prefix: str
    k: int  # the number of the next step
    done: bool = False
    reached: bool = False
    tokens: int = 0


def _parse(sample: StepSample, k: int) -> tuple[str, bool, str | None, bool]:
    parsed = parse_step(sample.text, k, truncated=sample.finish == "length")
    usable = parsed.status not in (STATUS_EMPTY, STATUS_RUNAWAY)
    return parsed.text, parsed.is_final, parsed.final_answer, usable


def _sample_groups(
    policy: Policy, prefixes: list[str], counts: list[int], s: RolloutSettings, seed: int
) -> list[list[StepSample]]:
    """``counts[i]`` independent samples after ``prefixes[i]``; equal prefixes get distinct samples."""
    need: dict[str, int] = {}
    for prefix, count in zip(prefixes, counts, strict=True):
        need[prefix] = need.get(prefix, 0) + count
    by_n: dict[int, list[str]] = {}
    for prefix, count in need.items():
        by_n.setdefault(count, []).append(prefix)
    pool: dict[str, list[StepSample]] = {}
    for n, group in sorted(by_n.items()):
        samples = generate_steps(
            policy,
            group,
            n,
            temperature=s.temperature,
            top_p=s.top_p,
            max_new_tokens=s.max_step_tokens,
            seed=random.Random(f"{seed}:{n}").randrange(2**63),
        )
        pool.update(zip(group, samples, strict=True))
    out = []
    for prefix, count in zip(prefixes, counts, strict=True):
        out.append(pool[prefix][:count])
        pool[prefix] = pool[prefix][count:]
    return out


def _candidates(
    policy: Policy, task: Task, problems: list[Problem], s: RolloutSettings
) -> list[list[StepLabel]]:
    """Per problem and depth of its sampled solution, the labeled-to-be candidate steps."""
    groups: list[list[StepLabel]] = []
    paths: dict[int, list[str]] = {i: [] for i in range(len(problems))}
    prompts = [policy.solution_prompt(p.question) for p in problems]
    for depth in range(s.max_steps):
        active = list(paths)
        if not active:
            break
        prefixes = [render_prefix(prompts[i], paths[i]) + step_header(depth + 1) for i in active]
        samples = _sample_groups(policy, prefixes, [s.width] * len(active), s, s.seed * 7919 + depth)
        for i, cands in zip(active, samples, strict=True):
            problem, previous = problems[i], tuple(paths[i])
            group, seen = [], set()
            for sample in cands:
                text, is_final, answer, usable = _parse(sample, depth + 1)
                if text in seen:
                    continue
                seen.add(text)
                group.append(
                    StepLabel(
                        problem,
                        previous,
                        text,
                        is_final,
                        usable,
                        final_correct=bool(task.check_answer(problem, answer)) if is_final else None,
                        checker=task.check_step(problem, list(previous), text),
                    )
                )
            groups.append(group)
            first = _parse(cands[0], depth + 1)
            if first[1] or not first[3]:
                del paths[i]  # the solution ended (or broke off)
            else:
                paths[i].append(first[0])
    return groups


def label_steps(
    policy: Policy, task: Task, problems: list[Problem], s: RolloutSettings, *, with_rollouts: bool = True
) -> tuple[list[list[StepLabel]], RolloutCost]:
    """Candidate groups (one per prefix of each sampled solution) with rollout labels; with
    ``with_rollouts=False`` only the candidates, labeled by the task's step checker alone."""
    started = time.perf_counter()
    groups = _candidates(policy, task, problems, s)
    cost = RolloutCost()
    if not with_rollouts:
        cost.seconds = time.perf_counter() - started
        return groups, cost
    prompts = {p.problem_id: policy.solution_prompt(p.question) for p in problems}
    rollouts: list[_Rollout] = []
    for group in groups:
        for label in group:
            if label.usable and not label.is_final:
                prefix = render_prefix(prompts[label.problem.problem_id], [*label.previous, label.text])
                k = len(label.previous) + 2
                rollouts += [_Rollout(label, prefix, k) for _ in range(s.rollouts)]
    cost.rollouts = len(rollouts)
    round_no = 0
    while True:
        live = [r for r in rollouts if not r.done]
        if not live:
            break
        prefixes = [r.prefix + step_header(r.k) for r in live]
        samples = _sample_groups(policy, prefixes, [1] * len(live), s, s.seed * 104729 + round_no)
        for r, (sample,) in zip(live, samples, strict=True):
            text, is_final, answer, usable = _parse(sample, r.k)
            cost.rollout_steps += 1
            cost.rollout_tokens += sample.n_tokens
            r.tokens += sample.n_tokens
            if is_final or not usable or r.k >= s.max_steps:
                r.done = True
                r.reached = is_final and bool(task.check_answer(r.label.problem, answer))
            else:
                r.prefix, r.k = render_prefix(r.prefix, [text]), r.k + 1
        round_no += 1
    for r in rollouts:  # in the order they were started, so the first r of them are a sample
        r.label.outcomes.append(r.reached)
        r.label.rollout_tokens.append(r.tokens)
    cost.seconds = time.perf_counter() - started
    return groups, cost
