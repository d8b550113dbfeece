"""The built-in task: procedural multi-step grade-school word problems.

Example (``n_ops=2``)::

    Tom has 12 apples. He buys 7 more, then gives away 5. How many apples does he have now?
    Step 1: 12 + 7 = 19
    Step 2: 19 - 5 = 14
    Step 3: The answer is 14.

Problems are short (a character-level model pays per character), every
intermediate result is a non-negative integer, and generation is cheap (10k
problems take a small fraction of a second).  The split of a problem is a hash of
its arithmetic skeleton ("12+7-5"), so train and eval never share a computation.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Any

from presrm.errors import TaskError
from presrm.steps import extract_final_answer, step_content, step_header
from presrm.tasks.arith_rewrite import inverse_question, render_question, repose_question, rewrite_question
from presrm.tasks.base import Problem, Reposed, Task, check_split, hash_split, number_perturbations

_MAX_OPERANDS = 8  # longer expressions are junk; matching them is exponential
_MAX_MULTIPLIER = 9  # keeps products readable for a character-level model
# max_start None: start amounts are drawn like operands (2..max_operand).
_OPTIONS = {"n_ops": 2, "max_operand": 20, "ops": "+-", "eval_fraction": 0.2, "max_start": None}


def _randint(rng: random.Random, lo: int, hi: int) -> int:
    """Like ``rng.randint`` (inclusive) but ~4x faster; generation speed matters here."""
    return lo + int(rng.random() * (hi - lo + 1))


def _pick(rng: random.Random, seq: Any) -> Any:
    return seq[int(rng.random() * len(seq))]


def _apply(op: str, a: int, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


class ArithTask(Task):
    """Procedural word problems with a full step checker (see :meth:`check_step`)."""

    has_step_checker = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        opts = dict(_OPTIONS)
        for key, value in (options or {}).items():
            if key not in _OPTIONS:
                raise TaskError(f"arith option {key!r} is unknown; valid options: {', '.join(_OPTIONS)}")
            opts[key] = value
        self.n_ops = _int_option("n_ops", opts["n_ops"], 1)
        self.max_operand = _int_option("max_operand", opts["max_operand"], 2)
        ops = opts["ops"]
        if not isinstance(ops, str) or not ops or set(ops) - set("+-*"):
            raise TaskError(f"arith option 'ops' must be a non-empty string of + - *, got {ops!r}")
        self.ops = "".join(sorted(set(ops), key="+-*".index))
        fraction = opts["eval_fraction"]
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
            raise TaskError(f"arith option 'eval_fraction' must be a number in (0, 1), got {fraction!r}")
        self.eval_fraction = float(fraction)
        # A wider start range covers the amounts a re-posed question starts from (the running
        # totals of a longer problem), so a base trained on it can solve the rest of any problem.
        self.max_start = None if opts["max_start"] is None else _int_option("max_start", opts["max_start"], 2)
        if self.ops == "-" and self.n_ops > self.max_operand:
            raise TaskError("arith options: with ops='-' n_ops must not exceed max_operand")
        wide = "" if self.max_start is None else f",max_start={self.max_start}"
        self.name = f"arith(n_ops={self.n_ops},max_operand={self.max_operand},ops={self.ops}{wide})"

    # -- generation ---------------------------------------------------------------

    def _skeleton(self, rng: random.Random) -> tuple[int, list[tuple[str, int]]]:
        """A start value and operations keeping every running total a non-negative int."""
        only_minus = self.ops == "-"
        lowest = self.n_ops if only_minus else 2
        cur = _randint(
            rng, lowest, self.max_operand if self.max_start is None else max(lowest, self.max_start)
        )
        start, ops = cur, []
        for i in range(self.n_ops):
            op = _pick(rng, self.ops)
            if op == "-" and cur == 0:
                op = "+" if "+" in self.ops else "*"
            if op == "+":
                b = _randint(rng, 1, self.max_operand)
            elif op == "-":
                reserve = self.n_ops - i - 1 if only_minus else 0  # later "-" steps need room
                b = _randint(rng, 1, min(self.max_operand, cur - reserve))
            else:
                b = _randint(rng, 2, max(2, min(self.max_operand, _MAX_MULTIPLIER)))
            ops.append((op, b))
            cur = _apply(op, cur, b)
        return start, ops

    def _render(self, rng: random.Random, start: int, ops: list[tuple[str, int]]) -> str:
        return render_question(lambda seq: _pick(rng, seq), rng.random, start, ops)

    def sample(self, n: int, split: str, seed: int) -> list[Problem]:
        """``n`` distinct problems of ``split``; the first k of a sample equal ``sample(k, ...)``."""
        check_split(split)
        rng = random.Random(f"arith:{seed}")
        problems: list[Problem] = []
        seen: set[str] = set()
        misses = 0  # consecutive draws without a new problem: the option space may be exhausted
        while len(problems) < n:
            if misses > 20_000:
                raise TaskError(
                    f"arith: found only {len(problems)} distinct {split} problems for {self.name}; "
                    "ask for fewer or raise n_ops / max_operand"
                )
            start, ops = self._skeleton(rng)
            key = str(start) + "".join(f"{op}{b}" for op, b in ops)
            if key in seen or hash_split(key, self.eval_fraction) != split:
                misses += 1
                continue
            misses = 0
            seen.add(key)
            question = self._render(rng, start, ops)
            steps, cur = [], start
            for op, b in ops:
                nxt = _apply(op, cur, b)
                steps.append(f"{cur} {op} {b} = {nxt}")
                cur = nxt
            steps.append(f"The answer is {cur}.")
            digest = hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
            problems.append(
                Problem(
                    problem_id=f"arith-{digest}",
                    question=question,
                    answer=str(cur),
                    steps=tuple(steps),
                    source="arith",
                    meta={"start": start, "ops": [[op, b] for op, b in ops], "skeleton": key},
                )
            )
        return problems

    def rewrite_question(self, question: str, n: int, seed: int) -> list[str]:
        return rewrite_question(question, n, seed)

    def repose(
        self, question: str, accepted_steps: Sequence[str], wording: int = 0, limit: int | None = None
    ) -> Reposed | None:
        """The last claimed result becomes the start amount, followed by the operations the
        steps have not performed yet (the next ``limit`` of them, if given), in the task's own
        words (``wording`` picks them)::

            Tom has 12 apples. He buys 7 more, then gives away 5. How many ...?
            after "Step 1: 12 + 7 = 19":  Ana has 19 pens. She gives away 5. How many ...?

        None when the question is not one the task wrote, a step makes no readable progress,
        the steps perform more operations than the question has, or the state is not a
        non-negative whole number (no such start amount can be worded)."""
        return repose_question(question, accepted_steps, wording, limit)

    def repose_inverse(self, question: str, steps: Sequence[str], wording: int = 0) -> Reposed | None:
        """The last step's operation undone from the result it claims (``+`` and ``-`` undo each
        other; ``*`` has no inverse wording): see :func:`presrm.tasks.arith_rewrite.inverse_question`."""
        return inverse_question(question, steps, wording)

    # -- checking -----------------------------------------------------------------

    def check_step(self, problem: Problem, previous_steps: list[str], step_text: str) -> bool | None:
        """Whether a step is correct.  The exact rule:

        1. Every equation chain in the step (``a op b = c``, also ``a op b op c = d``,
           ops ``+ - * x × · / ÷``, numbers may carry ``$`` and thousands commas) must be
           arithmetically right, every expression in a chain having the same value.
        2. Every operand must be a number written in the question or the result of
           an earlier chain (in an earlier step or earlier in this step).
        3. Every expression with two or more operands must be a meaningful
           combination: its operands stand for disjoint sets of the problem's facts
           (the start amount, each operation), and its value equals the quantity those
           facts determine together -- a running total (the start plus any subset of
           the current run of +/- operations, after all earlier operations) or a net
           change (a signed sum of +/- operations of one run; compared by magnitude).
           So reordering additions and subtractions and "7 - 5 = 2" net changes are
           accepted; a wrong operator, a reused or invented operand, or a
           multiplication applied too early are not.
        4. A stated final answer (see :func:`presrm.steps.extract_final_answer`) must
           equal the gold answer.
        5. A step with neither an equation nor a final answer is not correct: it
           makes no checkable progress.

        Results of earlier steps are used as they were written, so a step that builds
        on a wrong earlier result fails rule 3.
        """
        content = step_content(step_text)
        quantities = _quantities(*_problem_ops(problem))
        available = {Fraction(int(x)) for x in re.findall(r"\d+", problem.question)}
        for previous in previous_steps:
            for chain in _chains(step_content(previous)):
                result = _eval(chain[-1])
                if result is not None:
                    available.add(result)
        chains = _chains(content)
        answer = extract_final_answer(content)
        if not chains and answer is None:
            return False
        for chain in chains:
            values = {_eval(expr) for expr in chain}
            if len(values) != 1 or None in values:
                return False
            value = values.pop()
            assert value is not None
            for expr in chain:
                operands = expr[0::2]
                if len(operands) == 1:
                    continue  # a bare number states the chain's value, checked above
                if any(x not in available for x in operands):
                    return False
                if len(operands) > _MAX_OPERANDS or not _meaningful(operands, value, quantities):
                    return False
            available.add(value)
        return answer is None or bool(self.check_answer(problem, answer))

    def corrupt_step(
        self, problem: Problem, previous_steps: list[str], correct_content: str, rng: random.Random
    ) -> str:
        """A wrong step close to ``correct_content``: an off-by-a-little result, a wrong
        operator or a wrong operand (arithmetic redone), or a wrong final answer.
        The result is always judged wrong by :meth:`check_step`."""
        k = len(previous_steps) + 1
        candidates = _equation_corruptions(correct_content, rng)
        candidates += number_perturbations(correct_content, rng)
        gold = int(problem.answer)
        candidates.append(f"The answer is {gold + _randint(rng, 1, 3)}.")  # always wrong
        for candidate in candidates:
            if candidate != correct_content and not self.check_step(
                problem, previous_steps, f"{step_header(k)} {candidate}"
            ):
                return candidate
        raise AssertionError("unreachable: a wrong final answer never passes check_step")


def _int_option(key: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TaskError(f"arith option {key!r} must be an integer >= {minimum}, got {value!r}")
    return value


# -- equations -----------------------------------------------------------------------

# Bounded digit counts: a 5000-digit junk number is no equation (and int() refuses it).
_NUM = r"\$?(?:\d{1,3}(?:,\d{3}){1,10}|\d{1,30})(?:\.\d{1,30})?"
_OP = r"[-+*/x×·÷−]"
_EXPR = rf"{_NUM}(?:\s*{_OP}\s*{_NUM})*"
_CHAIN_RE = re.compile(rf"(?<![\w.,$]){_EXPR}(?:\s*=\s*{_EXPR})+(?![\d,])")
_TOKEN_RE = re.compile(rf"({_NUM})|({_OP})")
_EQUATION_RE = re.compile(r"^(\d+) ([-+*]) (\d+) = (\d+)$")

# An expression is a token list [number, op, number, op, number, ...].
Expr = list[Any]


def _chains(content: str) -> list[list[Expr]]:
    """Every equation chain in ``content`` as a list of parsed expressions."""
    chains = []
    for match in _CHAIN_RE.finditer(content):
        chain = []
        for side in match.group(0).split("="):
            tokens: Expr = []
            for num, op in _TOKEN_RE.findall(side):
                if num:
                    tokens.append(Fraction(num.lstrip("$").replace(",", "")))
                else:
                    tokens.append({"x": "*", "×": "*", "·": "*", "÷": "/", "−": "-"}.get(op, op))
            chain.append(tokens)
        chains.append(chain)
    return chains


def _eval(expr: Expr) -> Fraction | None:
    """Value of a token list with * and / before + and -; None on division by zero."""
    terms: list[Fraction] = []
    signs: list[int] = []
    current, sign = expr[0], 1
    for op, number in zip(expr[1::2], expr[2::2], strict=True):
        if op in "*/":
            if op == "/" and number == 0:
                return None
            current = current * number if op == "*" else current / number
        else:
            terms.append(current)
            signs.append(sign)
            current, sign = number, 1 if op == "+" else -1
    terms.append(current)
    signs.append(sign)
    return sum((s * t for s, t in zip(signs, terms, strict=True)), Fraction(0))


# -- semantics: which quantities a correct solution may compute ----------------------

# Quantities are keyed by the set of problem facts they combine ("facts"):
# 0 is the start amount, i >= 1 the i-th operation.


def _problem_ops(problem: Problem) -> tuple[int, tuple[tuple[str, int], ...]]:
    """Start value and operations, read back from the reference steps."""
    ops = []
    start: int | None = None
    for content in problem.steps:
        match = _EQUATION_RE.match(content)
        if match:
            start = int(match.group(1)) if start is None else start
            ops.append((match.group(2), int(match.group(3))))
    if start is None:
        raise TaskError(f"arith problem {problem.problem_id}: reference steps have no equation")
    return start, tuple(ops)


@lru_cache(maxsize=4096)
def _quantities(start: int, ops: tuple[tuple[str, int], ...]) -> tuple[dict[frozenset[int], int], ...]:
    """(running totals by facts, net changes by facts, multipliers by facts)."""
    totals: dict[frozenset[int], int] = {frozenset({0}): start}
    changes: dict[frozenset[int], int] = {}
    multipliers: dict[frozenset[int], int] = {}
    done, value, i = frozenset({0}), start, 1
    while i <= len(ops):
        op, b = ops[i - 1]
        if op == "*":
            multipliers[frozenset({i})] = b
            done, value, i = done | {i}, value * b, i + 1
            totals[done] = value
            continue
        run = []  # a maximal run of + and - operations, which commute
        while i <= len(ops) and ops[i - 1][0] != "*":
            op, b = ops[i - 1]
            run.append((i, b if op == "+" else -b))
            i += 1
        for size in range(1, len(run) + 1):
            for subset in itertools.combinations(run, size):
                facts = frozenset(j for j, _ in subset)
                net = sum(d for _, d in subset)
                changes[facts] = net
                totals[done | facts] = value + net
        done = done | {j for j, _ in run}
        value = totals[done]
    return totals, changes, multipliers


def _meaningful(
    operands: list[Fraction], value: Fraction, quantities: tuple[dict[frozenset[int], int], ...]
) -> bool:
    """Whether operands can be read as disjoint quantities that together make ``value``."""
    totals, changes, _multipliers = quantities
    candidates: dict[Fraction, list[frozenset[int]]] = {}
    for table in quantities:
        for facts, v in table.items():
            candidates.setdefault(Fraction(abs(v)), []).append(facts)
    choices = [candidates.get(x, []) for x in operands]
    for combo in itertools.product(*choices):
        union: frozenset[int] = frozenset().union(*combo)
        if sum(len(c) for c in combo) != len(union):
            continue  # a fact used twice
        if union in totals and totals[union] == value:
            return True
        if union in changes and abs(changes[union]) == value:
            return True
    return False  # a multiplier alone is never a result


def _equation_corruptions(content: str, rng: random.Random) -> list[str]:
    """Wrong versions of a ``a op b = c`` step (or a final-answer step), shuffled by kind."""
    final = re.fullmatch(r"The answer is (\d+)\.", content)
    if final:
        c = int(final.group(1))
        return [f"The answer is {c + d}." for d in _small_deltas(rng) if c + d >= 0]
    match = _EQUATION_RE.match(content)
    if not match:
        return []
    a, op, b, c = int(match.group(1)), match.group(2), int(match.group(3)), int(match.group(4))
    off_by = [f"{a} {op} {b} = {c + d}" for d in _small_deltas(rng) if c + d >= 0]
    other_ops = [o for o in "+-*" if o != op and _apply(o, a, b) >= 0]
    wrong_op = [f"{a} {o} {b} = {_apply(o, a, b)}" for o in rng.sample(other_ops, len(other_ops))]
    wrong_operand = []
    for d in _small_deltas(rng):
        if b + d >= 1 and _apply(op, a, b + d) >= 0:
            wrong_operand.append(f"{a} {op} {b + d} = {_apply(op, a, b + d)}")
        if a + d >= 1 and _apply(op, a + d, b) >= 0:
            wrong_operand.append(f"{a + d} {op} {b} = {_apply(op, a + d, b)}")
    kinds = [off_by, wrong_op, wrong_operand]
    rng.shuffle(kinds)
    return [candidate for kind in kinds for candidate in kind]


def _small_deltas(rng: random.Random) -> list[int]:
    deltas = [-3, -2, -1, 1, 2, 3]
    rng.shuffle(deltas)
    return deltas
