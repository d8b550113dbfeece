"""The task interface: where problems come from and how answers and steps are checked."""

from __future__ import annotations

import abc
import json
import random
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from presrm.answers import answers_match
from presrm.errors import TaskError
from presrm.steps import step_header

SPLITS = ("train", "eval")


@dataclass(frozen=True)
class Problem:
    """One problem with its gold answer and a reference solution.

    ``steps`` are the reference step contents without "Step k:" headers; the last
    one is "The answer is N.".  ``meta`` holds task-specific, JSON-serializable data.
    """

    problem_id: str
    question: str
    answer: str
    steps: tuple[str, ...]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)


def check_split(split: str) -> str:
    """Validate a split name ("train" or "eval")."""
    if split not in SPLITS:
        raise TaskError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    return split


def json_object(line: str, where: str) -> dict[str, Any]:
    """One JSONL line as a JSON object; a malformed line is an error naming ``where`` (file:line)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{where}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(row).__name__}")
    return row


def hash_split(key: str, eval_fraction: float) -> str:
    """Deterministic split of a problem by its content (same on every machine and run)."""
    bucket = zlib.crc32(key.encode("utf-8")) % 10_000
    return "eval" if bucket < eval_fraction * 10_000 else "train"


@dataclass(frozen=True)
class Reposed:
    """The rest of a problem after some accepted steps, as a fresh question.

    ``state`` is the value the steps reached (the new question's start); ``remaining`` is how
    many operations are left (None when unknown: a question the policy wrote). With none left
    there is no question (``question`` is None) and the rest's answer is ``state`` itself."""

    question: str | None
    state: str
    remaining: int | None


class Task(abc.ABC):
    """A source of problems with answer (and optionally step) checkers."""

    name: str
    has_step_checker: bool

    @abc.abstractmethod
    def sample(self, n: int, split: str, seed: int) -> list[Problem]:
        """``n`` problems of ``split`` ("train" or "eval"), deterministic for ``seed``.

        Train and eval problems never overlap.
        """

    def check_answer(self, problem: Problem, predicted: str | None) -> bool | None:
        """Whether a predicted final answer is right; None when there is none."""
        return answers_match(predicted, problem.answer)

    def rewrite_question(self, question: str, n: int, seed: int) -> list[str]:
        """Up to ``n`` rewrites of ``question`` with the same solution steps (the paraphrase
        judge's votes). A task that cannot rewrite its questions says so."""
        raise TaskError(
            f"task {self.name} cannot rewrite its questions, so judge.mode = 'paraphrase' does not"
            " work with it (the arith task can)"
        )

    def repose(
        self, question: str, accepted_steps: Sequence[str], wording: int = 0, limit: int | None = None
    ) -> Reposed | None:
        """The rest of ``question`` after ``accepted_steps`` as a fresh question that starts from
        the state the steps reached (``wording`` picks one of several phrasings; ``limit`` keeps
        only the next that many operations of the rest, where the task can cut it). None when the
        steps cannot be read as progress on this question (e.g. a step without an equation). Only
        the question and the steps are read, never an answer. A task that cannot re-pose says so."""
        raise TaskError(
            f"task {self.name} cannot re-pose the rest of a problem as a fresh question, so"
            " judge.mode = 'repose' does not work with it (arith, rg:chain_sum and"
            " rg:basic_arithmetic can)"
        )

    def repose_inverse(self, question: str, steps: Sequence[str], wording: int = 0) -> Reposed | None:
        """The last of ``steps`` undone: a fresh one-operation question that starts from the result
        the step claims and applies the inverse of the operation it performed. ``state`` is the
        value before the step, which a right step's inverse comes back to. None when the steps
        cannot be read or the operation has no inverse the task can word. Only the question and
        the steps are read, never an answer. A task that cannot undo a step says so."""
        raise TaskError(
            f"task {self.name} cannot word the inverse of a step, so judge.repose_inverse does not"
            " work with it (arith can)"
        )

    @abc.abstractmethod
    def check_step(self, problem: Problem, previous_steps: list[str], step_text: str) -> bool | None:
        """Whether a full step text ("Step k: ...") is correct after ``previous_steps``.

        None when the task has no step checker.
        """

    @abc.abstractmethod
    def corrupt_step(
        self, problem: Problem, previous_steps: list[str], correct_content: str, rng: random.Random
    ) -> str:
        """A plausible but wrong step content to pair against ``correct_content``."""

    def reference_steps(self, problem: Problem) -> list[str]:
        """The reference solution as full step texts with headers."""
        return [f"{step_header(i)} {content}" for i, content in enumerate(problem.steps, start=1)]


_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")


def number_perturbations(content: str, rng: random.Random) -> list[str]:
    """Heuristic wrong versions of a step: one number changed by 1 to 3.

    The last number (usually the step's result) comes first; the changed step
    keeps the rest of the wording, so it stays plausible.
    """
    out: list[str] = []
    for match in reversed(list(_NUMBER_RE.finditer(content))):
        value = Decimal(match.group(0))
        deltas = [-3, -2, -1, 1, 2, 3]
        rng.shuffle(deltas)
        for delta in deltas:
            new = value + delta
            if new >= 0:
                out.append(f"{content[: match.start()]}{new}{content[match.end() :]}")
    return out


def heuristic_corruption(problem: Problem, correct_content: str, rng: random.Random) -> str:
    """A wrong step for a task without a step checker: one number changed by 1 to 3 (the last
    number first), or a wrong final answer for a step without numbers. Unverified."""
    candidates = [c for c in number_perturbations(correct_content, rng) if c != correct_content]
    if candidates:
        return candidates[0]
    try:
        wrong = str(int(float(problem.answer)) + rng.randint(1, 3))
    except ValueError:
        wrong = "0"
    return f"The answer is {wrong}."


def preview_problems(task: Task) -> list[Problem]:
    """Problems that show a task's text: every problem of a file, else a sample of each split."""
    every = getattr(task, "all_problems", None)
    if callable(every):
        return list(every())
    out: list[Problem] = []
    for split, n in (("train", 200), ("eval", 50)):
        try:
            out += task.sample(n, split, seed=0)
        except TaskError:  # a small problem space: what it has is checked in the run itself
            continue
    return out
