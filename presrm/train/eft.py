"""Training data of the warm-up that turns M0 into M1: IFT solutions and EFT judge pairs.

IFT (instruction fine-tuning): reference solutions in the step format, either whole
(``"Step 1: …\\nStep 2: …\\nStep k: The answer is N.\\n"`` then EOS) or split into
(prefix ending in ``"Step k:"``, next step) examples exactly as the search prompts the model.

EFT (evaluation fine-tuning): pairs of candidate next steps for the same partial solution
with the verdict (and a short check) the judge should write, built from reference steps and
task corruptions (user-written pairs from JSONL: presrm.train.eft_jsonl). The pointwise judge
learns from the same pairs split into their two steps, each answered Yes (the pair's right
step) or No (the other), so its labels are the pairs' labels: the step checker's where the
task has one.

Where EOS goes: the trainer appends the tokenizer's EOS token id after a completion whose
:attr:`SFTExample.eos` is true (it is never part of the text, so a literal "</s>" in a
question stays text). A solution ends "…The answer is N.\\n" + EOS: the search stops every
step at the newline anyway, and a whole-solution decoder learns to stop after the answer.
A non-final step of a split solution ends at its newline with no EOS, because the model must
go on with the next step. A judge answer ends "[[A]]" + EOS (the judge stops at EOS).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from presrm.config import JudgeConfig
from presrm.judge_format import POINTWISE_TOKENS, pairwise_target, pairwise_user_text, pointwise_user_text
from presrm.model.policy import Policy
from presrm.search.judges import mode_class
from presrm.search.modes.base import EFT_POINTWISE
from presrm.steps import LINE, StepFormat, render_prefix, step_content, step_header
from presrm.tasks.base import Problem, Task
from presrm.train.examples import JudgePair, SFTExample


def solution_text(steps: Sequence[str], fmt: StepFormat = LINE) -> str:
    """Step contents as the completion of a whole solution: ``Step k: …`` and the format's
    separator each (a line end, or a blank line for multi-line steps)."""
    return "".join(f"{step_header(k)} {content}{fmt.separator}" for k, content in enumerate(steps, start=1))


def ift_examples(
    policy: Policy,
    task: Task,
    problems: Sequence[Problem],
    *,
    mode: Literal["solution", "steps", "both"] = "solution",
) -> list[SFTExample]:
    """Reference solutions as SFT examples.

    ``solution``: one example per problem, the whole solution after the solution prompt.
    ``steps``: one example per step, the prompt being the question and the earlier reference
    steps followed by ``"Step k:"`` (what the search feeds the model) and the completion the
    rest of that line (``" 12 + 7 = 19\\n"``); EOS only after the last step.
    ``both``: the two lists concatenated.

    Measured (tiny char model, arith n_ops=1, 64 problems, full fine-tuning, lr 3e-3, batch 8):
    at an equal number of updates (128) both modes reach the same per-token NLL of held-out
    steps in search form (0.505 vs 0.506); with the char and the SmolLM2 tokenizers the split
    examples hold exactly the whole solution's tokens (0/800 boundary mismatches), minus the
    headers, at 2.6-3.5x the tokens per epoch. So ``solution`` is the default; per epoch,
    ``steps`` just means k times more (shorter) updates.
    """
    if mode not in ("solution", "steps", "both"):
        raise ValueError(f"mode must be solution, steps or both, got {mode!r}")
    out: list[SFTExample] = []
    for problem in problems:
        prompt = policy.solution_prompt(problem.question)
        if mode in ("solution", "both"):
            out.append(SFTExample(prompt, solution_text(problem.steps, policy.step_format), eos=True))
        if mode in ("steps", "both"):
            full = task.reference_steps(problem)
            for k, content in enumerate(problem.steps, start=1):
                prefix = render_prefix(prompt, full[: k - 1], policy.step_format) + step_header(k)
                sep = policy.step_format.separator
                out.append(SFTExample(prefix, f" {content}{sep}", eos=k == len(problem.steps)))
    return out


def _consistent(task: Task, problem: Problem, previous: list[str], good: str, bad: str) -> bool:
    """Both-orders consistency filter: exactly one side is right, whichever is shown first.

    The checker judges each step on its own, so its pairwise verdict is "the right one" in
    both orders exactly when ``good`` passes and ``bad`` fails; a pair where both pass (a
    corruption that happens to be right) or both fail is dropped.
    """
    return (
        task.check_step(problem, previous, good) is True and task.check_step(problem, previous, bad) is False
    )


def build_eft_pairs(task: Task, problems: Sequence[Problem], rng: random.Random, n: int) -> list[JudgePair]:
    """``n`` judge pairs: a correct reference step against a task corruption, at a random depth.

    Problems are used round-robin (in a shuffled order) so pairs spread over all of them.
    Exactly half the verdicts are "A" (one more "B" when ``n`` is odd), in shuffled order.
    With a step checker, a pair is kept only if the checker calls exactly one side right
    in both orders. Without one (e.g. GSM8K-style JSONL) the labels are heuristic: the
    reference step is taken as right and its corruption (a changed number) as wrong.
    Fewer than ``n`` pairs come back only when the problems cannot give ``n`` distinct ones.
    """
    if n <= 0 or not problems:
        return []
    order = list(problems)
    rng.shuffle(order)
    seen: set[tuple[str, int, str]] = set()
    raw: list[tuple[Problem, int, str, str]] = []  # problem, depth, good content, bad content
    attempts, budget = 0, 20 * n + 100
    while len(raw) < n and attempts < budget:
        problem = order[attempts % len(order)]
        attempts += 1
        if not problem.steps:
            continue
        depth = rng.randrange(len(problem.steps))
        full = task.reference_steps(problem)
        previous = full[:depth]
        good = problem.steps[depth]
        bad = task.corrupt_step(problem, previous, good, rng)
        header = step_header(depth + 1)
        good_text, bad_text = f"{header} {good}", f"{header} {bad}"
        if step_content(good_text) == step_content(bad_text):
            continue  # never train the judge on two identical steps
        key = (problem.problem_id, depth, step_content(bad_text))
        if key in seen:
            continue
        if task.has_step_checker and not _consistent(task, problem, previous, good_text, bad_text):
            continue
        seen.add(key)
        raw.append((problem, depth, good_text, bad_text))
    # Balanced positions: the first half puts the correct step at A, the rest at B; then shuffle.
    pairs: list[JudgePair] = []
    for i, (problem, depth, good_text, bad_text) in enumerate(raw):
        a_good = i < len(raw) // 2
        pairs.append(
            JudgePair(
                problem_id=problem.problem_id,
                question=problem.question,
                previous_steps=tuple(task.reference_steps(problem)[:depth]),
                step_a=good_text if a_good else bad_text,
                step_b=bad_text if a_good else good_text,
                verdict="A" if a_good else "B",
                check=step_content(good_text),
            )
        )
    rng.shuffle(pairs)
    return pairs


CHECK_FORMS = ("compare", "recompute")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")


def step_result(step_text: str) -> str | None:
    """The number a step arrives at: the last number of its content ("19 - 5 = 14" → "14")."""
    numbers = _NUMBER_RE.findall(step_content(step_text))
    return numbers[-1] if numbers else None


def judge_check(pair: JudgePair, form: str = "compare") -> str | None:
    """What the judge writes before its verdict, in one of :data:`CHECK_FORMS`.

    ``recompute``: the pair's check as is (for arith the correct step, ``"7 + 17 = 24"``).
    ``compare``: the recomputation, then each candidate's result marked against it,
    ``"7 + 17 = 24; A 25 no, B 24 yes"``, so the verdict follows from the text before it
    (benchmarks/bench_judge_check.py measures the forms against the bare verdict). Pairs
    whose steps carry no number keep the plain check.
    """
    if form not in CHECK_FORMS:
        raise ValueError(f"check form must be one of {CHECK_FORMS}, got {form!r}")
    if form == "recompute" or pair.check is None:
        return pair.check
    results = (step_result(pair.step_a), step_result(pair.step_b))
    if results[0] is None or results[1] is None:
        return pair.check
    good = pair.step_a if pair.verdict == "A" else pair.step_b
    # A final-answer step is recomputed as its number alone (the judge's text stays short).
    recomputed = pair.check if "=" in pair.check else step_result(good)
    a_mark = "yes" if pair.verdict == "A" else "no"
    b_mark = "yes" if pair.verdict == "B" else "no"
    return f"{recomputed}; A {results[0]} {a_mark}, B {results[1]} {b_mark}"


def eft_examples(
    policy: Policy, pairs: Sequence[JudgePair], *, with_check: bool, check_form: str = "compare"
) -> list[SFTExample]:
    """Judge pairs as SFT examples: the pairwise prompt and ``[Check: … ][[A]]`` (+ EOS)."""
    return [
        SFTExample(
            prompt=policy.complete_prompt(
                pairwise_user_text(p.question, list(p.previous_steps), p.step_a, p.step_b)
            ),
            completion=pairwise_target(p.verdict, judge_check(p, check_form) if with_check else None),
            eos=True,
        )
        for p in pairs
    ]


@dataclass(frozen=True)
class PointItem:
    """One step of a judge pair, judged alone: ``label`` is True for the pair's right step."""

    problem_id: str
    question: str
    previous_steps: tuple[str, ...]
    step: str
    label: bool


def point_items(pairs: Sequence[JudgePair]) -> list[PointItem]:
    """Both steps of every pair, right one first; a step already listed (same question, prefix
    and text: several corruptions of one reference step) is listed once."""
    seen: set[tuple[str, tuple[str, ...], str]] = set()
    items: list[PointItem] = []
    for p in pairs:
        good, bad = (p.step_a, p.step_b) if p.verdict == "A" else (p.step_b, p.step_a)
        for step, label in ((good, True), (bad, False)):
            key = (p.question, p.previous_steps, step)
            if key not in seen:
                seen.add(key)
                items.append(PointItem(p.problem_id, p.question, p.previous_steps, step, label))
    return items


def pointwise_examples(policy: Policy, pairs: Sequence[JudgePair]) -> list[SFTExample]:
    """Judge pairs as pointwise SFT examples: the pointwise prompt, then ``Yes``/``No`` (+ EOS)."""
    return [
        SFTExample(
            prompt=policy.complete_prompt(pointwise_user_text(i.question, list(i.previous_steps), i.step)),
            completion=POINTWISE_TOKENS[0] if i.label else POINTWISE_TOKENS[1],
            eos=True,
        )
        for i in point_items(pairs)
    ]


def judge_examples(policy: Policy, pairs: Sequence[JudgePair], judge: JudgeConfig) -> list[SFTExample]:
    """The warm-up's judge examples in the form the run judges with (its mode's ``eft_form``):
    Yes/No for the pointwise judge, else the pairwise prompt (with a check if ``judge.check``)."""
    if mode_class(judge.mode, chat=policy.chat).eft_form == EFT_POINTWISE:
        return pointwise_examples(policy, pairs)
    return eft_examples(policy, pairs, with_check=judge.check)
