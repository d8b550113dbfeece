"""A task without ground truth, for answering a user's own question (``presrm solve``)."""

from __future__ import annotations

import random

from presrm.errors import TaskError
from presrm.tasks.base import Problem, Task


class FreeTask(Task):
    """No answers, no step checker: every check returns None (unknown)."""

    name = "free"
    has_step_checker = False

    def sample(self, n: int, split: str, seed: int) -> list[Problem]:
        raise TaskError("the free task has no problems to sample")

    def check_answer(self, problem: Problem, predicted: str | None) -> bool | None:
        return None

    def check_step(self, problem: Problem, previous_steps: list[str], step_text: str) -> bool | None:
        return None

    def corrupt_step(
        self, problem: Problem, previous_steps: list[str], correct_content: str, rng: random.Random
    ) -> str:
        raise TaskError("the free task has no reference steps to corrupt")

    def reference_steps(self, problem: Problem) -> list[str]:
        return []
