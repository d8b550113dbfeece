"""reasoning-gym tasks (rg:NAME): seeded splits, options, score_answer, the expression step checker,
and the writable-characters check."""

from __future__ import annotations

import random
import subprocess
import sys
from fractions import Fraction

import pytest

from presrm.errors import TaskError
from presrm.model.charvocab import build_char_tokenizer
from presrm.tasks import load_task
from presrm.tasks.expr_steps import (
    allowed_values,
    check_expression_step,
    format_number,
    parse_expression,
    reference_steps,
)
from presrm.tasks.writable import check_writable, unknown_characters


def test_samples_are_seeded_split_and_prefix_stable() -> None:
    task = load_task("rg:chain_sum", {"min_terms": 3, "max_terms": 3, "max_digits": 2})
    train = task.sample(30, "train", seed=4)
    assert [p.problem_id for p in train] == [p.problem_id for p in task.sample(30, "train", seed=4)]
    assert [p.problem_id for p in task.sample(10, "train", seed=4)] == [p.problem_id for p in train[:10]]
    assert {p.question for p in task.sample(30, "train", seed=5)} != {p.question for p in train}
    held_out = task.sample(30, "eval", seed=4)
    assert not {p.question for p in train} & {p.question for p in held_out}
    # The options reach the generator: every expression has exactly three terms.
    assert all(len(p.meta["rg"]["expression"].split()) == 5 for p in train + held_out)
    assert task.has_step_checker and task.name == "rg:chain_sum(max_digits=2,max_terms=3,min_terms=3)"


def test_reference_steps_pass_and_corruptions_fail_the_checker() -> None:
    for name in ("chain_sum", "basic_arithmetic", "products", "decimal_chain_sum"):
        task = load_task(f"rg:{name}", {"max_digits": 2} if name != "products" else None)
        rng = random.Random(0)
        for problem in task.sample(15, "train", seed=1):
            full = task.reference_steps(problem)
            assert full[-1] == f"Step {len(full)}: The answer is {problem.answer}."
            for k, step in enumerate(full):
                assert task.check_step(problem, full[:k], step) is True, (name, problem.question, step)
                bad = task.corrupt_step(problem, full[:k], problem.steps[k], rng)
                assert task.check_step(problem, full[:k], f"Step {k + 1}: {bad}") is False, (name, bad)


def test_answers_are_scored_by_the_dataset() -> None:
    task = load_task("rg:decimal_chain_sum", {"max_digits": 2})
    problem = task.sample(1, "train", seed=0)[0]
    assert task.check_answer(problem, problem.answer) is True
    assert task.check_answer(problem, problem.answer + "0") is True  # its scorer compares values
    assert task.check_answer(problem, "12345.6") is False
    assert task.check_answer(problem, None) is None
    # A problem object from elsewhere (resampled, stored) is scored from its metadata.
    other = load_task("rg:decimal_chain_sum", {"max_digits": 2})
    assert other.check_answer(problem, problem.answer) is True


def test_expression_checker_rules() -> None:
    root = parse_expression("4 - 1 - 7")
    assert root is not None and root.value == -4
    assert reference_steps(root) == ["4 - 1 = 3", "3 - 7 = -4"]
    values, changes = allowed_values(root)
    assert {Fraction(3), Fraction(-3), Fraction(-4)} <= values and Fraction(8) in changes
    question = {Fraction(4), Fraction(1), Fraction(7)}
    check = lambda prev, step: check_expression_step(root, question, prev, step)  # noqa: E731
    assert check([], "4 - 7 = -3") is True  # another order of the same chain
    assert check([], "1 + 7 = 8") is True  # a net change
    assert check(["4 - 7 = -3"], "-3 - 1 = -4") is True
    assert check([], "4 - 1 = 2") is False  # wrong arithmetic
    assert check([], "4 + 1 = 5") is False  # not a quantity of the problem
    assert check([], "4 - 2 = 2") is False  # an invented operand
    assert check([], "we subtract") is None
    nested = parse_expression("-( -49 + -27 ) * 3")
    assert nested is not None and nested.value == 228
    assert parse_expression("4 + ") is None and parse_expression("import os") is None
    assert [format_number(Fraction(x)) for x in ("7", "-5/4", "2/3", "1/20")] == ["7", "-1.25", "2/3", "0.05"]


def test_datasets_without_expressions_have_no_step_checker() -> None:
    task = load_task("rg:leg_counting")
    problem = task.sample(1, "train", seed=0)[0]
    assert not task.has_step_checker and problem.steps == (f"The answer is {problem.answer}.",)
    assert task.check_step(problem, [], "Step 1: 2 + 2 = 4") is None
    assert task.check_answer(problem, problem.answer) is True


def test_gsm_symbolic_gets_its_worked_solution() -> None:
    problem = load_task("rg:gsm_symbolic").sample(1, "train", seed=0)[0]
    assert len(problem.steps) > 1 and problem.steps[-1] == f"The answer is {problem.answer}."


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("rg:nope", None, "rg: unknown dataset 'nope'; available: ab, acre"),
        ("rg:", None, "needs a dataset name"),
        (
            "rg:chain_sum",
            {"terms": 3},
            "rg:chain_sum option 'terms' is unknown; valid options: eval_fraction, min_terms",
        ),
        ("rg:chain_sum", {"min_terms": 0}, "rg:chain_sum: invalid options"),
        ("rg:chain_sum", {"eval_fraction": 1}, "'eval_fraction' must be a number in (0, 1)"),
    ],
)
def test_bad_specs_and_options_are_one_line_errors(spec: str, options: dict | None, message: str) -> None:
    with pytest.raises(TaskError) as err:
        load_task(spec, options)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_small_problem_spaces_say_so() -> None:
    task = load_task("rg:chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    with pytest.raises(TaskError, match="found only .* distinct eval problems"):
        task.sample(500, "eval", seed=0)


def test_text_the_char_model_cannot_write_is_named() -> None:
    tokenizer = build_char_tokenizer()
    assert unknown_characters(tokenizer, ["12 + 7 = 19\n", "Tom"]) == []
    assert unknown_characters(tokenizer, ["costs €5 × 2"]) == ["×", "€"]
    check_writable(load_task("rg:chain_sum"), tokenizer, "default")  # ASCII only: fine
    with pytest.raises(TaskError) as err:
        check_writable(load_task("rg:gsm_symbolic"), tokenizer, "default")
    message = str(err.value)
    assert "model 'default' cannot write" in message and "'€' (U+20AC)" in message and "\n" not in message


def test_reasoning_gym_works_without_network() -> None:
    code = (
        "import socket\n"
        "def no(*a, **k): raise OSError('network disabled')\n"
        "socket.socket.connect = no; socket.create_connection = no\n"
        "from presrm.tasks import load_task\n"
        "t = load_task('rg:basic_arithmetic')\n"
        "p = t.sample(3, 'eval', seed=0)[0]\n"
        "print(t.check_answer(p, p.answer))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"
