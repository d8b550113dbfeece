"""Tasks from reasoning-gym's procedural generators: ``task = "rg:NAME"``.

The generators run offline. Task options go to the dataset's config (its fields, e.g.
``min_terms`` for ``chain_sum``) except ``eval_fraction``, presrm's own. Problems of one
sample come from one generator seed derived from the sample's seed; the split of a problem
is a hash of its question, so train and eval never share one. The dataset's own
``score_answer`` checks final answers (a score of 1 is right). Datasets whose entries carry
their arithmetic expression get reference steps (one operation per step) and a step checker
(:func:`presrm.tasks.expr_steps.check_expression_step`); ``gsm_symbolic`` gets its worked
solution as reference steps; the others a single "The answer is X." step and no checker.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import re
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from presrm.errors import TaskError
from presrm.steps import extract_final_answer, step_content, step_header
from presrm.tasks.answer_forms import gsm8k_steps
from presrm.tasks.base import Problem, Reposed, Task, check_split, hash_split, number_perturbations
from presrm.tasks.expr_steps import (
    Node,
    check_expression_step,
    format_number,
    parse_expression,
    reference_steps,
)
from presrm.tasks.repose import operation_count, read_progress, render_expression, substitute

_OWN_OPTIONS = {"eval_fraction": 0.2}
# Datasets whose metadata "expression" is plain arithmetic the step checker understands.
EXPRESSION_DATASETS = ("basic_arithmetic", "chain_sum", "decimal_chain_sum", "products")
_NUMBER_RE = re.compile(r"\d+(?:\.\d+)?")
# Datasets whose question states one expression that a partial computation can shorten.
REPOSABLE_DATASETS = ("chain_sum", "basic_arithmetic")
# The longest run of expression characters holding a digit: the question's expression.
_EXPRESSION_IN_TEXT_RE = re.compile(r"[-(][-(\s]*\d[\d\s.+\-*/()]*[\d)]|\d[\d\s.+\-*/()]*[\d)]|\d")
_MAX_MISSES = 20_000


def _import_rg() -> Any:
    try:
        import reasoning_gym
    except ImportError:  # pragma: no cover - a dependency; the message says how to get it
        raise TaskError("rg: tasks need the reasoning-gym package (pip install reasoning-gym)") from None
    return reasoning_gym


def _json_safe(value: Any) -> Any:
    """Metadata as JSON data (tuples become lists; anything else its text)."""
    return json.loads(json.dumps(value, default=str))


class RgTask(Task):
    """One reasoning-gym dataset as a presrm task."""

    def __init__(self, dataset: str, options: dict[str, Any] | None = None) -> None:
        rg = _import_rg()
        if dataset not in rg.factory.DATASETS:
            names = sorted(rg.factory.DATASETS)
            raise TaskError(f"rg: unknown dataset {dataset!r}; available: {', '.join(names)}")
        self.dataset = dataset
        opts = dict(options or {})
        fraction = opts.pop("eval_fraction", _OWN_OPTIONS["eval_fraction"])
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise TaskError(f"rg option 'eval_fraction' must be a number in (0, 1), got {fraction!r}")
        self.eval_fraction = float(fraction)
        _cls, config_cls = rg.factory.DATASETS[dataset]
        fields = [f.name for f in dataclasses.fields(config_cls) if f.name != "seed"]
        unknown = sorted(set(opts) - set(fields))
        if unknown:
            valid = ", ".join([*_OWN_OPTIONS, *fields])
            raise TaskError(f"rg:{dataset} option {unknown[0]!r} is unknown; valid options: {valid}")
        self.options = opts
        self._scorer = self._generator(0)  # a bad option value fails now, not in the middle of a run
        self.has_step_checker = dataset in EXPRESSION_DATASETS
        shown = ",".join(f"{k}={v}" for k, v in sorted(opts.items()))
        self.name = f"rg:{dataset}" + (f"({shown})" if shown else "")
        self._entries: dict[str, dict[str, Any]] = {}  # problem id -> the generator's entry
        self._trees: dict[str, Node] = {}

    def _generator(self, seed: int) -> Any:
        rg = _import_rg()
        try:
            return rg.create_dataset(self.dataset, seed=seed, **self.options)
        except (AssertionError, TypeError, ValueError) as exc:
            raise TaskError(f"rg:{self.dataset}: invalid options {self.options} ({exc})") from None

    def sample(self, n: int, split: str, seed: int) -> list[Problem]:
        """``n`` distinct problems of ``split``; the first k of a sample equal ``sample(k, ...)``."""
        check_split(split)
        # reasoning-gym seeds item i with seed + i: a hashed base keeps nearby seeds apart.
        base = random.Random(f"rg:{self.dataset}:{seed}").randrange(2**31)
        generator = self._generator(base)
        problems: list[Problem] = []
        seen: set[str] = set()
        index = misses = 0
        while len(problems) < n:
            if misses > _MAX_MISSES:
                raise TaskError(
                    f"{self.name}: found only {len(problems)} distinct {split} problems; "
                    "ask for fewer or widen the task options"
                )
            try:
                entry = generator[index]
            except IndexError:  # a dataset with a fixed number of items
                misses = _MAX_MISSES + 1
                continue
            index += 1
            question = str(entry["question"]).strip()
            if question in seen or hash_split(question, self.eval_fraction) != split:
                misses += 1
                continue
            misses = 0
            seen.add(question)
            problems.append(self._problem(entry, question))
        return problems

    def _problem(self, entry: dict[str, Any], question: str) -> Problem:
        digest = hashlib.blake2b(question.encode("utf-8"), digest_size=6).hexdigest()
        problem_id = f"rg-{self.dataset}-{digest}"
        answer = str(entry["answer"]).strip()
        meta = _json_safe(entry.get("metadata", {}))
        steps: list[str] = []
        tree = self._tree_of(meta)
        if tree is not None:
            self._trees[problem_id] = tree
            steps = reference_steps(tree)
        elif isinstance(meta.get("answer_cot"), str) and "####" in meta["answer_cot"]:
            steps = gsm8k_steps(meta["answer_cot"])
        self._entries[problem_id] = {
            "question": entry["question"],
            "answer": entry["answer"],
            "metadata": meta,
        }
        return Problem(
            problem_id=problem_id,
            question=question,
            answer=answer,
            steps=(*steps, f"The answer is {answer}."),
            source=self.name,
            meta={"rg": meta},
        )

    def _tree_of(self, meta: dict[str, Any]) -> Node | None:
        if self.dataset not in EXPRESSION_DATASETS or not isinstance(meta.get("expression"), str):
            return None
        return parse_expression(meta["expression"])

    def _entry(self, problem: Problem) -> dict[str, Any]:
        entry = self._entries.get(problem.problem_id)
        if entry is None:  # a problem from another instance: rebuild it from its metadata
            meta = problem.meta.get("rg", {})
            entry = {"question": problem.question, "answer": problem.answer, "metadata": meta}
        return entry

    def check_answer(self, problem: Problem, predicted: str | None) -> bool | None:
        """The dataset's ``score_answer``: right when it gives full marks."""
        if predicted is None:
            return None
        try:
            score = self._scorer.score_answer(predicted, self._entry(problem))
        except Exception:  # a scorer may choke on odd model text; that answer is not right
            return False
        return bool(score is not None and float(score) >= 1.0)

    def check_step(self, problem: Problem, previous_steps: list[str], step_text: str) -> bool | None:
        """With an expression: its equations (see ``check_expression_step``) and any stated final
        answer must be right, and a step with neither makes no progress (not correct).
        Without one: None."""
        if not self.has_step_checker:
            return None
        tree = self._trees.get(problem.problem_id) or self._tree_of(problem.meta.get("rg", {}))
        if tree is None:
            return None
        content = step_content(step_text)
        numbers = {Fraction(x) for x in _NUMBER_RE.findall(problem.question)}
        previous = [step_content(s) for s in previous_steps]
        equations = check_expression_step(tree, numbers, previous, content)
        answer = extract_final_answer(content)
        if equations is None and answer is None:
            return False
        if equations is False:
            return False
        return answer is None or bool(self.check_answer(problem, answer))

    def repose(
        self, question: str, accepted_steps: Sequence[str], wording: int = 0, limit: int | None = None
    ) -> Reposed | None:
        """The question's expression with each operation the steps performed replaced by the
        result they claim, in the question's own frame (``chain_sum`` and ``basic_arithmetic``;
        the datasets have one wording, so ``wording`` changes nothing)::

            Calculate 4 + 3 * 2.   after "Step 1: 3 * 2 = 6":   Calculate 4 + 6.

        None when a step performs no operation of the expression or several at once. An
        expression has no single next operation to cut it after, so ``limit`` must be None."""
        if self.dataset not in REPOSABLE_DATASETS:
            return super().repose(question, accepted_steps, wording, limit)
        if limit is not None:
            raise TaskError(
                f"{self.name} re-poses the whole rest of an expression only (judge.repose_span = 'rest')"
            )
        found = _EXPRESSION_IN_TEXT_RE.search(question)
        root = parse_expression(found.group(0)) if found else None
        progress = read_progress(accepted_steps)
        if found is None or root is None or progress is None:
            return None
        if progress.answered is not None:
            return Reposed(None, progress.answered, 0)
        rest = substitute(root, progress.operations)
        if rest is None:
            return None
        remaining = operation_count(rest)
        if remaining == 0:
            return Reposed(None, format_number(rest.value), 0)  # a bare number: the claimed result
        # Before any step the state is the whole expression: nothing has been computed yet.
        state = format_number(progress.state) if progress.state is not None else found.group(0)
        text = f"{question[: found.start()]}{render_expression(rest)}{question[found.end() :]}"
        return Reposed(text, state, remaining)

    def corrupt_step(
        self, problem: Problem, previous_steps: list[str], correct_content: str, rng: random.Random
    ) -> str:
        """One number of the step changed by 1 to 3 (the result first), else a wrong answer;
        with a step checker only a candidate it rejects."""
        candidates = [c for c in number_perturbations(correct_content, rng) if c != correct_content]
        candidates.append(f"The answer is {_wrong_answer(problem.answer, rng)}.")
        header = step_header(len(previous_steps) + 1)
        for candidate in candidates:
            if not self.has_step_checker or not self.check_step(
                problem, previous_steps, f"{header} {candidate}"
            ):
                return candidate
        return candidates[-1]


def _wrong_answer(gold: str, rng: random.Random) -> str:
    try:
        return format_number(Fraction(gold) + rng.randint(1, 3))
    except (ValueError, ZeroDivisionError):
        return f"{gold} 1"
