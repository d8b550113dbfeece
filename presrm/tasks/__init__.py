"""Problem sources: the built-in procedural ``arith`` task and GSM8K-format JSONL files."""

from __future__ import annotations

from typing import Any

from presrm.errors import TaskError
from presrm.tasks.arith import ArithTask
from presrm.tasks.base import SPLITS, Problem, Task
from presrm.tasks.jsonl import JsonlTask

__all__ = ["SPLITS", "ArithTask", "JsonlTask", "Problem", "Task", "load_task"]

TASK_SPECS = ("arith", "jsonl:PATH")


def load_task(spec: str, options: dict[str, Any] | None = None) -> Task:
    """The task named by ``spec``: "arith" or "jsonl:PATH"; ``options`` are task options."""
    if spec == "arith":
        return ArithTask(options)
    if spec.startswith("jsonl:"):
        path = spec.removeprefix("jsonl:")
        if not path:
            raise TaskError("task spec 'jsonl:' needs a file path, e.g. jsonl:data/gsm8k.jsonl")
        return JsonlTask(path, options)
    if spec.startswith("rg:"):
        raise TaskError(
            f"task spec {spec!r}: reasoning-gym tasks are not available in this build; "
            f"valid forms: {', '.join(TASK_SPECS)}"
        )
    raise TaskError(f"unknown task spec {spec!r}; valid forms: {', '.join(TASK_SPECS)}")
