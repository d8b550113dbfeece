"""Tasks: the procedural arith task and its checker, GSM8K-format JSONL, answer matching."""

from __future__ import annotations

import json
import random
import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presrm.answers import answers_match
from presrm.errors import TaskError
from presrm.tasks import load_task
from presrm.tasks.arith import ArithTask
from presrm.tasks.base import Problem
from presrm.tasks.jsonl import JsonlTask

FIXTURE = Path(__file__).parent / "data" / "gsm8k_sample.jsonl"

# -- answers_match ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("14", "14", True),
        ("15", "14", False),
        ("14.0", "14", True),
        ("14.5", "14", False),
        ("1,234", "1234", True),
        ("1234", "1,234", True),
        ("-3", "-3", True),
        ("3/4", "0.75", True),
        ("6/8", "3/4", True),
        ("1/3", "0.33", False),
        (r"\frac{3}{4}", "0.75", True),
        (r"\dfrac{1}{2}", r"\frac12", True),
        (r"$\boxed{5}$.", "5", True),
        ("5.", "5", True),
        (r"\sqrt{2}", r"2^{1/2}", True),
        (r"\sqrt{2}", r"\sqrt{3}", False),
        ("x+1", "1+x", True),
        (r"\pi", "3.14159", False),
        ("Paris", "paris", True),
        ("London", "Paris", False),
        ("", "3", False),
        ("1/0", "1", False),
        (None, "14", None),
    ],
)
def test_answers_match(predicted: str | None, gold: str, expected: bool | None) -> None:
    assert answers_match(predicted, gold) is expected


def test_answers_match_plain_numbers_skip_sympy(monkeypatch: pytest.MonkeyPatch) -> None:
    import presrm.answers as answers

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("math_verify called for plain numbers")

    monkeypatch.setattr(answers, "parse", fail)
    assert answers.answers_match("14", "14") is True
    assert answers.answers_match("1,234", "1234.0") is True
    assert answers.answers_match("3/4", "2") is False


def test_answers_match_in_thread() -> None:
    # math_verify's default timeouts use signal.alarm, which fails outside the main thread.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda pair: answers_match(*pair), [(r"\frac{1}{2}", "0.5"), ("x^2", "x*x")]))
    assert results == [True, True]


# -- arith: generation --------------------------------------------------------------------


def test_arith_is_deterministic_for_a_seed() -> None:
    task = ArithTask()
    assert task.sample(50, "train", seed=3) == task.sample(50, "train", seed=3)
    assert task.sample(50, "train", seed=3) != task.sample(50, "train", seed=4)
    assert task.sample(20, "train", seed=3) == task.sample(50, "train", seed=3)[:20]


def test_arith_splits_are_disjoint() -> None:
    task = ArithTask()
    train = [p for seed in range(3) for p in task.sample(500, "train", seed)]
    evals = [p for seed in range(3) for p in task.sample(300, "eval", seed)]
    skeleton = {p.meta["skeleton"] for p in train}
    assert not skeleton & {p.meta["skeleton"] for p in evals}
    assert not {p.problem_id for p in train} & {p.problem_id for p in evals}
    assert not {p.question for p in train} & {p.question for p in evals}


def test_arith_problem_shape() -> None:
    task = ArithTask({"n_ops": 3, "ops": "+-*", "max_operand": 12})
    problems = task.sample(300, "train", seed=0)
    assert len({p.problem_id for p in problems}) == 300
    assert len({p.question for p in problems}) > 250  # varied wording and numbers
    assert {re.match(r"\w+", p.question).group(0) for p in problems} >= {"Tom", "Ana", "Mia"}  # type: ignore[union-attr]
    ops_seen = set()
    for p in problems:
        assert len(p.steps) == 4 and p.steps[-1] == f"The answer is {p.answer}."
        assert len(p.question) <= 190
        value = p.meta["start"]
        for content, (op, b) in zip(p.steps[:-1], p.meta["ops"], strict=True):
            a, got_op, got_b, c = re.fullmatch(r"(\d+) ([-+*]) (\d+) = (\d+)", content).groups()  # type: ignore[union-attr]
            assert (int(a), got_op, int(got_b)) == (value, op, b)
            value = {"+": value + b, "-": value - b, "*": value * b}[op]
            assert int(c) == value >= 0
            assert str(b) in p.question
            ops_seen.add(op)
        assert p.answer == str(value)
        assert task.reference_steps(p)[0].startswith("Step 1: ")
    assert ops_seen == {"+", "-", "*"}


def test_arith_default_questions_are_short() -> None:
    problems = ArithTask().sample(2000, "train", seed=1)
    assert max(len(p.question) for p in problems) <= 150


def test_arith_samples_ten_thousand_distinct_problems() -> None:
    # Its speed is a benchmark's business (a timed assertion fails on shared cores), not a test's.
    problems = ArithTask().sample(10_000, "train", seed=0)
    assert len(problems) == 10_000 == len({p.meta["skeleton"] for p in problems})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_ops": 0}, "n_ops"),
        ({"n_ops": "2"}, "n_ops"),
        ({"max_operand": 1}, "max_operand"),
        ({"ops": "+/"}, "ops"),
        ({"ops": ""}, "ops"),
        ({"eval_fraction": 1.5}, "eval_fraction"),
        ({"colour": "red"}, "colour"),
        ({"ops": "-", "n_ops": 30}, "n_ops"),
    ],
)
def test_arith_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(TaskError, match=message):
        ArithTask(options)


def test_arith_exhausted_option_space_is_an_error() -> None:
    with pytest.raises(TaskError, match="distinct"):
        ArithTask({"n_ops": 1, "max_operand": 3}).sample(1000, "train", seed=0)


def test_arith_only_subtraction_stays_non_negative() -> None:
    for p in ArithTask({"ops": "-", "n_ops": 4}).sample(200, "train", seed=2):
        assert all(int(n) >= 0 for step in p.steps for n in re.findall(r"-?\d+", step))


# -- arith: the step checker --------------------------------------------------------------


@pytest.fixture
def problem() -> Problem:
    # Tom has 12 apples. He buys 7 more, then gives away 5.
    return Problem(
        problem_id="t",
        question="Tom has 12 apples. He buys 7 more, then gives away 5. How many apples does he have now?",
        answer="14",
        steps=("12 + 7 = 19", "19 - 5 = 14", "The answer is 14."),
        source="arith",
    )


@pytest.mark.parametrize(
    ("previous", "step", "expected"),
    [
        ([], "12 + 7 = 19", True),
        ([], "7 + 12 = 19", True),
        ([], "12 - 5 = 7", True),  # + and - may be reordered
        ([], "7 - 5 = 2", True),  # a net change
        ([], "12 + 7 - 5 = 14", True),
        ([], "$12 + $7 = $19", True),
        ([], "He has 12 + 7 = 19 apples. Then 19 - 5 = 14.", True),
        ([], "The answer is 14.", True),
        (["12 + 7 = 19"], "19 - 5 = 14", True),
        (["12 - 5 = 7"], "7 + 7 = 14", True),
        (["7 - 5 = 2"], "12 + 2 = 14", True),
        (["12 + 7 = 19", "19 - 5 = 14"], "The answer is 14.", True),
        (["12 + 7 = 19"], "19 - 5 = 14, so the answer is 14.", True),
        ([], "12 + 7 = 20", False),  # wrong arithmetic
        ([], "12 + 7 = 19 - 5 = 14", False),  # a false chain of equalities
        ([], "12 + 8 = 20", False),  # wrong operand (not in the question)
        ([], "12 - 7 = 5", False),  # wrong operator
        ([], "12 * 7 = 84", False),
        ([], "12 + 5 = 17", False),  # 5 is taken away, not added
        ([], "12 + 12 = 24", False),  # a fact used twice
        (["12 + 7 = 19"], "19 - 7 = 12", False),
        (["12 + 7 = 19"], "19 + 5 = 24", False),
        (["12 + 7 = 20"], "20 - 5 = 15", False),  # builds on a wrong result
        ([], "19 - 5 = 14", False),  # 19 was never computed
        ([], "The answer is 15.", False),  # wrong final answer
        (["12 + 7 = 19"], "12 + 7 = 19, so the answer is 19.", False),  # premature answer
        ([], "Tom buys more apples.", False),  # no checkable progress
        ([], "", False),
        ([], "[bold]12 + 7 = 19'; --{0}", True),  # markup and quotes are just text
    ],
)
def test_arith_step_checker(problem: Problem, previous: list[str], step: str, expected: bool) -> None:
    task = ArithTask()
    previous_texts = [f"Step {i}: {s}" for i, s in enumerate(previous, start=1)]
    assert task.check_step(problem, previous_texts, f"Step {len(previous) + 1}: {step}") is expected


def test_arith_checker_multiplication_order() -> None:
    task = ArithTask()
    p = Problem(
        "m",
        "Ana has 4 cards. She gets 2 more, then has 3 times as many, then loses 5.",
        "13",
        ("4 + 2 = 6", "6 * 3 = 18", "18 - 5 = 13", "The answer is 13."),
        "arith",
    )
    check = task.check_step
    assert check(p, ["Step 1: 4 + 2 = 6"], "Step 2: 6 * 3 = 18")
    assert check(p, ["Step 1: 4 + 2 = 6"], "Step 2: 3 * 6 = 18")
    assert not check(p, [], "Step 1: 4 * 3 = 12")  # multiplying before adding
    assert not check(p, ["Step 1: 4 + 2 = 6"], "Step 2: 6 - 5 = 1")  # subtracting before multiplying
    assert check(p, ["Step 1: 4 + 2 = 6", "Step 2: 6 * 3 = 18"], "Step 3: 18 - 5 = 13")


@pytest.mark.parametrize("options", [{}, {"n_ops": 4, "ops": "+-*"}, {"ops": "-", "n_ops": 3}, {"ops": "*"}])
def test_arith_references_pass_and_corruptions_fail(options: dict[str, object]) -> None:
    task = ArithTask(options)
    rng = random.Random(0)
    kinds: set[str] = set()
    for seed in range(4):
        for p in task.sample(60, "train", seed):
            ref = task.reference_steps(p)
            assert task.check_answer(p, p.answer) is True
            for i, step in enumerate(ref):
                assert task.check_step(p, ref[:i], step) is True, (p.question, step)
                wrong = task.corrupt_step(p, ref[:i], p.steps[i], rng)
                assert wrong != p.steps[i]
                assert task.check_step(p, ref[:i], f"Step {i + 1}: {wrong}") is False, (p.question, wrong)
                kinds.add(_corruption_kind(p.steps[i], wrong))
    assert {"result", "final"} <= kinds
    assert len(kinds) >= 3  # operator and operand changes happen too


def _corruption_kind(correct: str, wrong: str) -> str:
    if correct.startswith("The answer"):
        return "final"
    ca, cop, cb = correct.split()[0], correct.split()[1], correct.split()[2]
    wa, wop, wb = wrong.split()[0], wrong.split()[1], wrong.split()[2]
    if (ca, cop, cb) == (wa, wop, wb):
        return "result"
    return "operator" if cop != wop else "operand"


def test_arith_corruptions_are_seeded() -> None:
    task = ArithTask()
    p = task.sample(1, "train", 0)[0]
    first = [task.corrupt_step(p, [], p.steps[0], random.Random(s)) for s in range(10)]
    again = [task.corrupt_step(p, [], p.steps[0], random.Random(s)) for s in range(10)]
    assert first == again and len(set(first)) > 1


def test_arith_check_answer() -> None:
    task = ArithTask()
    p = task.sample(1, "eval", 0)[0]
    assert task.check_answer(p, p.answer) is True
    assert task.check_answer(p, str(int(p.answer) + 1)) is False
    assert task.check_answer(p, None) is None


# -- load_task and JSONL ------------------------------------------------------------------


def test_load_task_specs() -> None:
    assert isinstance(load_task("arith"), ArithTask)
    assert load_task("arith", {"n_ops": 3}).n_ops == 3  # type: ignore[attr-defined]
    assert isinstance(load_task(f"jsonl:{FIXTURE}"), JsonlTask)
    assert load_task("rg:basic_arithmetic").has_step_checker  # tests/test_tasks_rg.py covers rg:
    for bad in ("gsm8k", "", "ARITH", "RG:chain_sum"):
        with pytest.raises(TaskError, match=r"valid forms: arith, jsonl:PATH, rg:NAME, hf:PATH\[:SPLIT\]"):
            load_task(bad)
    with pytest.raises(TaskError, match="needs a file path"):
        load_task("jsonl:")


def test_jsonl_fixture() -> None:
    task = load_task(f"jsonl:{FIXTURE}")
    assert task.has_step_checker is False
    train, evals = task.sample(10, "train", 0), task.sample(10, "eval", 0)
    assert len(train) == 4 and len(evals) == 1  # the file's own split fields ("test" means eval)
    assert task.sample(2, "train", 0) == train[:2]
    assert sorted(p.problem_id for p in train) == [f"gsm8k_sample-{n}" for n in (1, 2, 4, 5)]
    p = next(p for p in train if p.problem_id == "gsm8k_sample-1")
    assert p.answer == "10"
    assert p.steps == (
        "In total she makes 36 + 24 = 60 muffins.",
        "She fills 60 / 6 = 10 boxes.",
        "The answer is 10.",
    )
    assert task.reference_steps(p)[2] == "Step 3: The answer is 10."
    assert task.check_answer(p, "10.0") is True and task.check_answer(p, "11") is False
    assert task.check_step(p, [], "Step 1: anything") is None
    wrong = task.corrupt_step(p, [], p.steps[0], random.Random(0))
    assert wrong != p.steps[0] and wrong.startswith("In total she makes 36 + 24 = ")
    assert task.corrupt_step(p, [], "Add them.", random.Random(0)).startswith("The answer is ")


def _write(tmp_path: Path, lines: list[str]) -> str:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


GOOD = json.dumps({"question": "What is 2 + 2?", "answer": "2 + 2 = <<2+2=4>>4\n#### 4"})


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        ([GOOD, "{not json"], 2, "invalid JSON"),
        ([GOOD, "", json.dumps({"answer": "#### 1"})], 3, "missing key 'question'"),
        ([json.dumps({"question": "q"})], 1, "missing key 'answer'"),
        ([GOOD, json.dumps({"question": "q", "answer": "1 + 1 = 2"})], 2, "####"),
        ([json.dumps({"question": "q", "answer": "#### "})], 1, "nothing after"),
        ([json.dumps([1, 2])], 1, "JSON object"),
        ([json.dumps({"question": 5, "answer": "#### 1"})], 1, "'question' must be"),
        ([json.dumps({"question": "q", "answer": "#### 1", "split": "dev"})], 1, "'split'"),
        ([json.dumps({"question": "q", "answer": "#### 1", "split": "train"}), GOOD], 2, "every line"),
        (
            [
                json.dumps({"id": "a", "question": "q", "answer": "#### 1"}),
                json.dumps({"id": "a", "question": "r", "answer": "#### 2"}),
            ],
            2,
            "already used on line 1",
        ),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path: Path, lines: list[str], line: int, message: str) -> None:
    path = _write(tmp_path, lines)
    with pytest.raises(TaskError) as info:
        load_task(f"jsonl:{path}")
    assert f"{path}:{line}:" in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_jsonl_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="not found"):
        load_task(f"jsonl:{tmp_path / 'nope.jsonl'}")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(TaskError, match="no problems"):
        load_task(f"jsonl:{empty}")
    with pytest.raises(TaskError, match="eval_fraction"):
        load_task(f"jsonl:{FIXTURE}", {"eval_fraction": 0})


def test_jsonl_hash_split_and_ids(tmp_path: Path) -> None:
    numbers = [*range(199), 1233]
    rows = [
        {"question": f"What is {n} + 1?", "answer": f"{n} + 1 = {n + 1}\n#### {n + 1:,}"} for n in numbers
    ]
    rows[0]["id"] = "first"
    path = _write(tmp_path, [json.dumps(r) for r in rows])
    task = JsonlTask(path)
    train, evals = task.sample(1000, "train", 1), task.sample(1000, "eval", 1)
    assert len(train) + len(evals) == 200
    assert 20 <= len(evals) <= 60  # about 20 %
    assert not {p.question for p in train} & {p.question for p in evals}
    assert [p.question for p in JsonlTask(path).sample(1000, "eval", 1)] == [p.question for p in evals]
    by_q = {p.question: p for p in train + evals}
    assert by_q["What is 0 + 1?"].problem_id == "first"
    assert by_q["What is 5 + 1?"].problem_id == "bad-6"
    assert by_q["What is 1233 + 1?"].answer == "1234"  # "#### 1,234"
    with pytest.raises(TaskError, match="split"):
        task.sample(1, "test", 0)


# -- robustness on model-written junk -------------------------------------------------------

_TOKENS = st.sampled_from(
    ["12", "7", "5", "19", "14", "0", " ", "+", "-", "*", "x", "/", "=", "$", ",", ".", "The answer is",
     "\\boxed{", "}", "Step 2:", "\n", "é", "'", "{0}"]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_TOKENS, max_size=40).map("".join),
    st.lists(st.lists(_TOKENS, max_size=12).map("".join), max_size=3),
)
def test_arith_checker_never_raises(step: str, previous: list[str]) -> None:
    p = Problem("t", "Tom has 12 apples. He buys 7 more, then gives away 5.", "14",
                ("12 + 7 = 19", "19 - 5 = 14", "The answer is 14."), "arith")  # fmt: skip
    assert ArithTask().check_step(p, previous, f"Step 1: {step}") in (True, False)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=40), st.lists(_TOKENS, max_size=10).map("".join)))
def test_answers_match_never_raises(predicted: str | None) -> None:
    assert answers_match(predicted, "14") in ((None,) if predicted is None else (True, False))


def test_arith_checker_is_fast_on_junk() -> None:
    p = ArithTask().sample(1, "train", 0)[0]  # 4 + 5 - 3
    cases = [
        ("12 + " * 3000 + "12 = 5", False),
        ("4 + 5 = 9 " * 2000, True),  # repetitive but every claim is right
        ("9" * 5000 + " = 9", False),
        ("1 + 1 + 1 + 1 " * 30 + "= 30", False),
    ]
    for junk, expected in cases:
        start = time.perf_counter()
        assert ArithTask().check_step(p, [], f"Step 1: {junk}") is expected
        assert time.perf_counter() - start < 1.0
