"""Whether a model can write a task's text: its tokenizer must know every character.

A character-level vocabulary (the default model's, presrm.model.charvocab) maps any other
character to ``<unk>``; a run on such text would train on ``<unk>`` and never write the
answer. Byte-level vocabularies (SmolLM2, GPT-2) know every character.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from presrm.errors import TaskError
from presrm.tasks.base import Problem, Task, preview_problems

_SHOWN = 12  # characters named in the error; more are counted


def unknown_characters(tokenizer: Any, texts: Iterable[str]) -> list[str]:
    """The characters of ``texts`` that ``tokenizer`` encodes as its unknown token, sorted."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return []
    chars = sorted({c for text in texts for c in text})
    out = []
    for char in chars:
        if unk in tokenizer(char, add_special_tokens=False)["input_ids"]:
            out.append(char)
    return out


def _texts(problem: Problem) -> list[str]:
    return [problem.question, problem.answer, *problem.steps]


def check_writable(task: Task, tokenizer: Any, model: str, problems: list[Problem] | None = None) -> None:
    """Raise a one-line TaskError naming the characters of ``task`` the model cannot write."""
    shown_problems = preview_problems(task) if problems is None else problems
    bad = unknown_characters(tokenizer, (t for p in shown_problems for t in _texts(p)))
    if not bad:
        return
    example = next(p for p in shown_problems if any(c in t for t in _texts(p) for c in bad))
    names = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad[:_SHOWN])
    more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    raise TaskError(
        f"task {task.name!r}: model {model!r} cannot write {len(bad)} character(s) of its text: "
        f"{names}{more} (e.g. in problem {example.problem_id}); use a model with a byte-level "
        "vocabulary (e.g. model=smollm2) or a task without them"
    )
