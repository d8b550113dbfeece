"""Problem sources: the built-in ``arith`` task, GSM8K-format JSONL files, reasoning-gym
generators (``rg:NAME``) and datasets on disk (``hf:PATH[:SPLIT]``)."""

from __future__ import annotations

from typing import Any

from presrm.errors import TaskError
from presrm.tasks.arith import ArithTask
from presrm.tasks.base import SPLITS, Problem, Task
from presrm.tasks.jsonl import JsonlTask

__all__ = ["SPLITS", "ArithTask", "JsonlTask", "Problem", "Task", "load_task"]

TASK_SPECS = ("arith", "jsonl:PATH", "rg:NAME", "hf:PATH[:SPLIT]")


def load_task(spec: str, options: dict[str, Any] | None = None) -> Task:
    """The task named by ``spec`` (one of :data:`TASK_SPECS`); ``options`` are task options."""
    if spec == "arith":
        return ArithTask(options)
    if spec.startswith("jsonl:"):
        path = spec.removeprefix("jsonl:")
        if not path:
            raise TaskError("task spec 'jsonl:' needs a file path, e.g. jsonl:data/gsm8k.jsonl")
        return JsonlTask(path, options)
    if spec.startswith("rg:"):
        from presrm.tasks.rg import RgTask  # imports reasoning-gym: only when asked for

        name = spec.removeprefix("rg:")
        if not name:
            raise TaskError("task spec 'rg:' needs a dataset name, e.g. rg:chain_sum")
        return RgTask(name, options)
    if spec.startswith("hf:"):
        from presrm.tasks.hf import HfTask

        return HfTask(spec.removeprefix("hf:"), options)
    raise TaskError(f"unknown task spec {spec!r}; valid forms: {', '.join(TASK_SPECS)}")
