"""Problems from a dataset on disk: ``task = "hf:PATH[:SPLIT]"`` (sources: presrm.tasks.hf_read).

Options: ``question_field`` (default ``"question"``), ``answer_field`` (``"answer"``),
``answer_form`` (``"gsm8k"``: ``#### N`` after the worked lines; ``"boxed"``: the last
``\\boxed{}`` of a MATH-style solution; ``"plain"``: the value itself), ``eval_split``
(the dataset split the eval problems come from; without it a hash of the question splits
the rows, ``eval_fraction`` of them to eval). Final answers are checked with math-verify
(presrm.answers); there is no step checker. A repeated question is kept once.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

from presrm.errors import TaskError
from presrm.tasks.answer_forms import ANSWER_FORMS, parse_answer
from presrm.tasks.base import Problem, Task, check_split, hash_split, heuristic_corruption
from presrm.tasks.hf_read import Row, read_rows

_OPTIONS: dict[str, Any] = {
    "question_field": "question",
    "answer_field": "answer",
    "answer_form": "gsm8k",
    "eval_split": None,
    "eval_fraction": 0.2,
}


def split_spec(rest: str) -> tuple[str, str | None]:
    """``PATH[:SPLIT]`` -> (PATH, SPLIT or None); a split never holds a slash."""
    path, sep, split = rest.rpartition(":")
    if sep and path and split and "/" not in split and "\\" not in split:
        return path, split
    return rest, None


class HfTask(Task):
    """Question/answer rows of a dataset on disk; final answers checked, steps not."""

    has_step_checker = False

    def __init__(self, spec: str, options: dict[str, Any] | None = None) -> None:
        opts = dict(_OPTIONS)
        for key, value in (options or {}).items():
            if key not in _OPTIONS:
                raise TaskError(f"hf option {key!r} is unknown; valid options: {', '.join(_OPTIONS)}")
            opts[key] = value
        for key in ("question_field", "answer_field"):
            if not isinstance(opts[key], str) or not opts[key]:
                raise TaskError(f"hf option {key!r} must be a field name, got {opts[key]!r}")
        if opts["answer_form"] not in ANSWER_FORMS:
            raise TaskError(
                f"hf option 'answer_form' must be one of {', '.join(ANSWER_FORMS)}, got {opts['answer_form']!r}"
            )
        fraction = opts["eval_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise TaskError(f"hf option 'eval_fraction' must be a number in (0, 1), got {fraction!r}")
        eval_split = opts["eval_split"]
        if eval_split is not None and (not isinstance(eval_split, str) or not eval_split):
            raise TaskError(f"hf option 'eval_split' must be a split name, got {eval_split!r}")
        path, split = split_spec(spec)
        if not path:
            raise TaskError("task spec 'hf:' needs a dataset path, e.g. hf:data/gsm8k.parquet")
        self.name = f"hf:{spec}"
        self.fields = (opts["question_field"], opts["answer_field"])
        self.answer_form: str = opts["answer_form"]
        self._splits: dict[str, list[Problem]] = {"train": [], "eval": []}
        label, rows = read_rows(path, split)
        if eval_split is None:
            for problem in self._problems(rows):
                self._splits[hash_split(problem.question, float(fraction))].append(problem)
        else:
            if eval_split == split:
                raise TaskError(f"hf option 'eval_split' {eval_split!r} is the split the task trains on")
            held_out = self._problems(read_rows(path, eval_split)[1])
            questions = {p.question for p in held_out}
            self._splits["eval"] = held_out
            self._splits["train"] = [p for p in self._problems(rows) if p.question not in questions]
        self.label = label

    def _problems(self, rows: list[Row]) -> list[Problem]:
        out: list[Problem] = []
        seen: set[str] = set()
        q_field, a_field = self.fields
        for where, row in rows:
            for key in self.fields:
                if key not in row:
                    fields = ", ".join(map(str, row)) or "none"
                    raise TaskError(f"{where}: missing field {key!r} (fields: {fields}); see hf task options")
            question, answer = row[q_field], row[a_field]
            if not isinstance(question, str) or not question.strip():
                raise TaskError(f"{where}: {q_field!r} must be a non-empty string, got {question!r}")
            if (
                self.answer_form == "plain"
                and isinstance(answer, (int, float))
                and not isinstance(answer, bool)
            ):
                answer = str(answer)
            if not isinstance(answer, str):
                raise TaskError(f"{where}: {a_field!r} must be a string, got {answer!r}")
            try:
                gold, steps = parse_answer(answer, self.answer_form)
            except ValueError as exc:
                raise TaskError(f"{where}: {a_field!r} {exc} (answer_form = {self.answer_form!r})") from None
            question = " ".join(question.split())
            if question in seen:
                continue
            seen.add(question)
            digest = hashlib.blake2b(question.encode("utf-8"), digest_size=6).hexdigest()
            out.append(
                Problem(
                    problem_id=f"hf-{digest}",
                    question=question,
                    answer=gold,
                    steps=(*steps, f"The answer is {gold}."),
                    source=self.name,
                    meta={"row": where},
                )
            )
        return out

    def sample(self, n: int, split: str, seed: int) -> list[Problem]:
        """Up to ``n`` problems of ``split`` in a seeded order (all of them if fewer exist)."""
        pool = self._splits[check_split(split)]
        if not pool:
            raise TaskError(f"{self.name}: no {split} problems in the dataset")
        order = list(pool)
        random.Random(f"hf:{seed}").shuffle(order)
        return order[:n]

    def check_step(self, problem: Problem, previous_steps: list[str], step_text: str) -> bool | None:
        return None

    def corrupt_step(
        self, problem: Problem, previous_steps: list[str], correct_content: str, rng: random.Random
    ) -> str:
        """Unverified: one number of the step changed (see ``heuristic_corruption``)."""
        return heuristic_corruption(problem, correct_content, rng)

    def all_problems(self) -> list[Problem]:
        return self._splits["train"] + self._splits["eval"]
