"""Problems from a GSM8K-format JSONL file.

Each line is ``{"question": "...", "answer": "step\\nstep\\n#### 42"}``; optional
keys: ``"id"`` (else the problem id is ``<file stem>-<line>``) and ``"split"``
("train", or "eval"/"test"/"validation"; when any row has one, every row must).
Without split fields the split is a deterministic hash of the question.
Reference steps are the answer lines before ``####`` with calculator annotations
(``<<48/2=24>>``) removed, then "The answer is N.".  There is no step checker.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from presrm.errors import TaskError
from presrm.tasks.answer_forms import clean_number, gsm8k_steps
from presrm.tasks.base import Problem, Task, check_split, hash_split, heuristic_corruption, json_object

_SPLIT_NAMES = {"train": "train", "eval": "eval", "test": "eval", "validation": "eval", "val": "eval"}
_OPTIONS = {"eval_fraction": 0.2}


class JsonlTask(Task):
    """GSM8K-style problems from a file; final answers are checked, steps are not."""

    has_step_checker = False

    def __init__(self, path: str, options: dict[str, Any] | None = None) -> None:
        opts = dict(_OPTIONS)
        for key, value in (options or {}).items():
            if key not in _OPTIONS:
                raise TaskError(f"jsonl option {key!r} is unknown; valid options: {', '.join(_OPTIONS)}")
            opts[key] = value
        fraction = opts["eval_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise TaskError(f"jsonl option 'eval_fraction' must be a number in (0, 1), got {fraction!r}")
        self.path = Path(path)
        self.name = f"jsonl:{path}"
        self._splits: dict[str, list[Problem]] = {"train": [], "eval": []}
        self._load(float(fraction))

    def _load(self, eval_fraction: float) -> None:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise TaskError(f"{self.path}: task file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskError(f"{self.path}: cannot read task file ({exc})") from None
        rows = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
        if not rows:
            raise TaskError(f"{self.path}: task file has no problems")
        has_split: bool | None = None
        seen_ids: dict[str, int] = {}
        for lineno, line in rows:
            where = f"{self.path}:{lineno}"
            problem, split = self._parse_row(line, lineno, where)
            if has_split is None:
                has_split = split is not None
            elif has_split != (split is not None):
                raise TaskError(f"{where}: 'split' must be given on every line or on none")
            if problem.problem_id in seen_ids:
                first = seen_ids[problem.problem_id]
                raise TaskError(f"{where}: id {problem.problem_id!r} already used on line {first}")
            seen_ids[problem.problem_id] = lineno
            self._splits[split or hash_split(problem.question, eval_fraction)].append(problem)

    def _parse_row(self, line: str, lineno: int, where: str) -> tuple[Problem, str | None]:
        row = json_object(line, where)
        for key in ("question", "answer"):
            if key not in row:
                raise TaskError(f"{where}: missing key {key!r}")
            if not isinstance(row[key], str) or not row[key].strip():
                raise TaskError(f"{where}: {key!r} must be a non-empty string")
        answer_text: str = row["answer"]
        if "####" not in answer_text:
            raise TaskError(f"{where}: 'answer' has no '#### <final answer>' line")
        gold = clean_number(answer_text.rsplit("####", 1)[1])
        if not gold:
            raise TaskError(f"{where}: nothing after '####' in 'answer'")
        split = None
        if "split" in row:
            split = _SPLIT_NAMES.get(str(row["split"]).lower())
            if split is None:
                raise TaskError(
                    f"{where}: 'split' must be one of {', '.join(_SPLIT_NAMES)}, got {row['split']!r}"
                )
        problem_id = str(row["id"]) if "id" in row else f"{self.path.stem}-{lineno}"
        steps = (*gsm8k_steps(answer_text), f"The answer is {gold}.")
        problem = Problem(
            problem_id=problem_id,
            question=" ".join(row["question"].split()),
            answer=gold,
            steps=steps,
            source=self.name,
            meta={"line": lineno},
        )
        return problem, split

    def sample(self, n: int, split: str, seed: int) -> list[Problem]:
        """Up to ``n`` problems of ``split`` in a seeded order (all of them if fewer exist).

        The first k of a sample equal ``sample(k, ...)`` for the same seed.
        """
        pool = self._splits[check_split(split)]
        if not pool:
            raise TaskError(f"{self.path}: no {split} problems in the file")
        order = list(pool)
        random.Random(f"jsonl:{seed}").shuffle(order)
        return order[:n]

    def all_problems(self) -> list[Problem]:
        return self._splits["train"] + self._splits["eval"]

    def check_step(self, problem: Problem, previous_steps: list[str], step_text: str) -> bool | None:
        """No step checker for free-form solutions: always None."""
        return None

    def corrupt_step(
        self, problem: Problem, previous_steps: list[str], correct_content: str, rng: random.Random
    ) -> str:
        """Heuristic: one number of the step changed by 1 to 3 (the last number first).

        Without a step checker this cannot be verified; a step without numbers
        gets a wrong final answer instead.
        """
        return heuristic_corruption(problem, correct_content, rng)
