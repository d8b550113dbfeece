"""Who re-poses the rest of a problem for the repose judge: the task, or a chat policy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from presrm.errors import TaskError
from presrm.model.policy import Policy
from presrm.search.policy_repose import PolicyReposer
from presrm.tasks.base import Reposed, Task

Item = tuple[str, tuple[str, ...], int]
"""A question, the steps after it, and the wording wanted."""


class Reposer(Protocol):
    def repose_many(self, items: Sequence[Item]) -> list[Reposed | None]:
        """Each item's rest as a fresh question (see :meth:`Task.repose`)."""
        ...

    def claimed(self, question: str, steps: tuple[str, ...]) -> Reposed | None:
        """The state the steps claim (only ``state`` is read), or None when they cannot be read."""
        ...


class TaskReposer:
    """The task's own re-posing (its renderer; ``limit`` operations of the rest, or all)."""

    def __init__(self, task: Task, limit: int | None) -> None:
        task.repose("", (), limit=limit)  # a task that cannot re-pose (or cut) refuses here
        self.task = task
        self.limit = limit

    def repose_many(self, items: Sequence[Item]) -> list[Reposed | None]:
        return [self.task.repose(q, steps, wording=w, limit=self.limit) for q, steps, w in items]

    def claimed(self, question: str, steps: tuple[str, ...]) -> Reposed | None:
        return self.task.repose(question, steps)


def make_reposer(policy: Policy, task: Task, span: str, max_rows: int) -> Reposer:
    """The task's re-posing where it has one; else a chat policy writes the questions itself; else
    the task's one-line refusal."""
    limit = 1 if span == "step" else None
    try:
        return TaskReposer(task, limit)
    except TaskError:
        if not policy.chat:
            raise
    return PolicyReposer(policy, span=span, max_rows=max_rows)
