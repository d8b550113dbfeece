"""The task interface: where problems come from and how answers and steps are checked."""

from __future__ import annotations

import abc
import random
import re
import zlib
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


def hash_split(key: str, eval_fraction: float) -> str:
    """Deterministic split of a problem by its content (same on every machine and run)."""
    bucket = zlib.crc32(key.encode("utf-8")) % 10_000
    return "eval" if bucket < eval_fraction * 10_000 else "train"


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
