"""Greedy step-by-step solving of many questions at once, with no task and no answer checking.

What a judge needs when it asks the policy to solve a question it made itself (a re-posed rest
of a problem): the steps and the final answer the policy writes, nothing about whether it is
right. Each round decodes the next step of every unfinished question in one batched call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from presrm.model.generation import generate_steps
from presrm.model.policy import Policy
from presrm.steps import STATUS_EMPTY, STATUS_RUNAWAY, parse_step, render_prefix, step_header


@dataclass(frozen=True)
class Solved:
    """The policy's greedy solution of one question: its step texts and its final answer (None
    when it stated none within the step limit or wrote an unusable step)."""

    steps: tuple[str, ...]
    answer: str | None


def solve_greedily(
    policy: Policy, questions: Sequence[str], *, max_steps: int, max_step_tokens: int, max_rows: int = 64
) -> list[Solved]:
    """Each question solved greedily, step by step, in the search's own prompt and step format.
    Equal questions are solved once."""
    distinct = list(dict.fromkeys(questions))
    fmt = policy.step_format
    prompts = [policy.solution_prompt(q) for q in distinct]
    steps: list[list[str]] = [[] for _ in distinct]
    answers: list[str | None] = [None] * len(distinct)
    active = list(range(len(distinct)))
    for k in range(1, max_steps + 1):
        if not active:
            break
        prefixes = [render_prefix(prompts[i], steps[i], fmt) + step_header(k) for i in active]
        samples = generate_steps(
            policy, prefixes, 1, temperature=0.0, max_new_tokens=max_step_tokens, seed=0, max_rows=max_rows
        )
        still = []
        for i, (sample,) in zip(active, samples, strict=True):
            parsed = parse_step(sample.text, k, truncated=sample.finish == "length", fmt=fmt)
            if parsed.status in (STATUS_EMPTY, STATUS_RUNAWAY):
                continue  # an unusable step ends the attempt without an answer
            steps[i].append(parsed.text)
            if parsed.is_final:
                answers[i] = parsed.final_answer
            else:
                still.append(i)
        active = still
    solved = {q: Solved(tuple(s), a) for q, s, a in zip(distinct, steps, answers, strict=True)}
    return [solved[q] for q in questions]
