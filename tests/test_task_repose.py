"""Task.repose: the rest of a problem after some steps, as a fresh question that starts from the
state the steps reached (arith, rg:chain_sum, rg:basic_arithmetic), and a one-line refusal elsewhere."""

from __future__ import annotations

from pathlib import Path

import pytest

from presrm.errors import TaskError
from presrm.tasks import load_task
from presrm.tasks.arith_rewrite import parse_question
from presrm.tasks.base import Problem
from presrm.tasks.expr_steps import parse_expression
from presrm.tasks.rg import _EXPRESSION_IN_TEXT_RE

FIXTURE = Path(__file__).parent / "data" / "gsm8k_sample.jsonl"


def _steps(problem: Problem, k: int) -> list[str]:
    return [f"Step {i + 1}: {s}" for i, s in enumerate(problem.steps[:k])]


def _arith_value(question: str) -> int:
    """What an arith question asks, computed from its text (start, then each operation)."""
    parsed = parse_question(question)
    assert parsed is not None, question
    value, ops = parsed
    for op, b in ops:
        value = value + b if op == "+" else value - b if op == "-" else value * b
    return value


@pytest.mark.parametrize("n_ops", [1, 2, 3, 4, 5])
def test_arith_rest_after_right_steps_asks_for_the_same_answer(n_ops: int) -> None:
    task = load_task("arith", {"n_ops": n_ops, "ops": "+-*"})
    for problem in task.sample(40, "eval", seed=3):
        for k in range(n_ops + 1):
            rest = task.repose(problem.question, _steps(problem, k))
            assert rest is not None and rest.remaining == n_ops - k
            if rest.question is None:
                assert rest.state == problem.answer
            else:
                assert _arith_value(rest.question) == int(problem.answer)
                assert parse_question(rest.question) is not None  # the task's own wording


def test_arith_rest_starts_from_the_claimed_result_even_when_it_is_wrong() -> None:
    task = load_task("arith", {"n_ops": 3})
    problem = task.sample(1, "eval", seed=5)[0]
    start, ops = parse_question(problem.question)  # type: ignore[misc]
    wrong = f"Step 1: {start} {ops[0][0]} {ops[0][1]} = 99"
    rest = task.repose(problem.question, [wrong])
    assert rest is not None and rest.state == "99" and rest.remaining == 2
    assert parse_question(rest.question or "") == (99, ops[1:])


def test_arith_wordings_differ_and_repeat() -> None:
    task = load_task("arith", {"n_ops": 3})
    problem = task.sample(1, "eval", seed=7)[0]
    steps = _steps(problem, 1)
    wordings = {task.repose(problem.question, steps, wording=w).question for w in range(6)}  # type: ignore[union-attr]
    assert len(wordings) > 1
    assert task.repose(problem.question, steps, wording=2) == task.repose(problem.question, steps, wording=2)
    assert len({repr(parse_question(q or "")) for q in wordings}) == 1  # the same start and operations


@pytest.mark.parametrize(
    "steps",
    [
        ["Step 1: I think about it."],  # no progress to read
        ["Step 1: 3 + 4 = 7", "Step 2: 7 + 1 = 8", "Step 3: 8 + 1 = 9", "Step 4: 9 + 1 = 10"],  # too many
        ["Step 1: 3 - 9 = -6"],  # a start amount no question can state
    ],
)
def test_arith_unreadable_progress_gives_none(steps: list[str]) -> None:
    task = load_task("arith", {"n_ops": 2})
    question = "Tom has 3 apples. He buys 4 more, then gives away 2. How many apples does he have now?"
    assert task.repose(question, steps) is None


def test_arith_final_answer_leaves_nothing_to_ask() -> None:
    task = load_task("arith", {"n_ops": 2})
    question = "Tom has 3 apples. He buys 4 more, then gives away 2. How many apples does he have now?"
    rest = task.repose(question, ["Step 1: 3 + 4 = 7", "Step 2: The answer is 12."])
    assert rest is not None and (rest.question, rest.state, rest.remaining) == (None, "12", 0)
    assert task.repose("What is the meaning of life?", []) is None  # not a question arith wrote


@pytest.mark.parametrize("dataset", ["chain_sum", "basic_arithmetic"])
def test_rg_rest_after_right_steps_has_the_same_value(dataset: str) -> None:
    task = load_task(f"rg:{dataset}", {})
    checked = 0
    for problem in task.sample(30, "eval", seed=1):
        n = len(problem.steps) - 1  # the last reference step states the answer
        for k in range(n + 1):
            rest = task.repose(problem.question, _steps(problem, k))
            assert rest is not None, (problem.question, k)
            if rest.question is None:
                assert parse_expression(rest.state).value == parse_expression(problem.answer).value  # type: ignore[union-attr]
                continue
            found = _EXPRESSION_IN_TEXT_RE.search(rest.question)
            assert found is not None
            expr = parse_expression(found.group(0))
            assert expr is not None and expr.value == parse_expression(problem.answer).value  # type: ignore[union-attr]
            assert rest.remaining == n - k
            checked += 1
    assert checked > 30


def test_rg_step_that_is_no_part_of_the_expression_gives_none() -> None:
    task = load_task("rg:chain_sum", {})
    question = "State the final answer to the following arithmetic problem: 12 + 30 - 5 ="
    assert task.repose(question, ["Step 1: 30 - 5 = 25"]) is None  # not how left-to-right reads
    rest = task.repose(question, ["Step 1: 12 + 30 = 41"])  # a wrong claim is kept as the state
    assert rest is not None and rest.question is not None and rest.question.endswith(": 41 - 5 =")


@pytest.mark.parametrize("spec", ["rg:gsm_symbolic", f"jsonl:{FIXTURE}"])
def test_tasks_that_cannot_repose_refuse_in_one_line(spec: str) -> None:
    task = load_task(spec, {})
    with pytest.raises(TaskError) as err:
        task.repose("How many?", [])
    assert "\n" not in str(err.value) and "repose" in str(err.value)


def test_arith_limit_keeps_only_the_next_operations() -> None:
    task = load_task("arith", {"n_ops": 4})
    problem = task.sample(1, "eval", seed=9)[0]
    start, ops = parse_question(problem.question)  # type: ignore[misc]
    rest = task.repose(problem.question, _steps(problem, 1), limit=1)
    assert rest is not None and rest.remaining == 1 and rest.question is not None
    first_result = int(problem.steps[0].split("=")[1])
    assert parse_question(rest.question) == (first_result, ops[1:2])
    assert task.repose(problem.question, _steps(problem, 4), limit=1) == task.repose(
        problem.question, _steps(problem, 4)
    )


def test_rg_cannot_cut_an_expression() -> None:
    task = load_task("rg:chain_sum", {})
    with pytest.raises(TaskError, match="repose_span"):
        task.repose("State the final answer to the following arithmetic problem: 1 + 2 =", [], limit=1)


def test_arith_inverse_of_a_right_step_comes_back_to_the_value_before_it() -> None:
    task = load_task("arith", {"n_ops": 4})
    for problem in task.sample(40, "eval", seed=11):
        start, ops = parse_question(problem.question)  # type: ignore[misc]
        for k in range(1, 5):
            steps = _steps(problem, k)
            undone = task.repose_inverse(problem.question, steps, wording=k % 2)
            before = start if k == 1 else int(problem.steps[k - 2].split("=")[1])
            assert undone is not None and undone.state == str(before) and undone.remaining == 1
            claimed = int(problem.steps[k - 1].split("=")[1])
            op, b = ops[k - 1]
            assert parse_question(undone.question or "") == (claimed, [("-" if op == "+" else "+", b)])
            assert _arith_value(undone.question or "") == before  # a right step's inverse gives it back


def test_arith_inverse_starts_from_a_wrong_claim_and_refuses_what_it_cannot_word() -> None:
    task = load_task("arith", {"n_ops": 2, "ops": "+-*"})
    question = "Tom has 12 apples. He buys 7 more, then gives away 5. How many apples does he have now?"
    undone = task.repose_inverse(question, ["Step 1: 12 + 7 = 20"])
    assert (
        undone is not None
        and undone.state == "12"
        and parse_question(undone.question or "") == (20, [("-", 7)])
    )
    assert task.repose_inverse(question, ["Step 1: 12 + 7 = 19", "Step 2: The answer is 14."]) is None
    assert task.repose_inverse(question, ["Step 1: Let me think."]) is None
    assert task.repose_inverse(question, []) is None
    assert task.repose_inverse(question, ["Step 1: 12 + 7 - 5 = 14"]) is None  # two operations at once
    times = "Ana has 3 pens. She has 4 times as many, then buys 2 more. How many pens does she have now?"
    assert parse_question(times) == (3, [("*", 4), ("+", 2)])
    assert task.repose_inverse(times, ["Step 1: 3 * 4 = 12"]) is None  # no words for a division
    assert task.repose_inverse(times, ["Step 1: 3 * 4 = 12", "Step 2: 12 + 2 = 14"]) is not None
    first, second = (task.repose_inverse(question, ["Step 1: 12 + 7 = 19"], wording=w) for w in (0, 1))
    assert first is not None and second is not None and first.question != second.question
    assert task.repose_inverse(question, ["Step 1: 12 + 7 = 19"], wording=0) == first  # deterministic


@pytest.mark.parametrize("spec", ["rg:chain_sum", "rg:gsm_symbolic"])
def test_tasks_that_cannot_undo_a_step_refuse_in_one_line(spec: str) -> None:
    with pytest.raises(TaskError) as err:
        load_task(spec, {}).repose_inverse("How many?", [])
    assert "\n" not in str(err.value) and "repose_inverse" in str(err.value)
