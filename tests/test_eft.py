"""Warm-up data: IFT solutions, EFT judge pairs (built, loaded from JSONL, split) and their SFT form."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json
import random
from collections import Counter
from pathlib import Path

import pytest

from presrm.config import JudgeConfig
from presrm.errors import TaskError
from presrm.judge_format import pairwise_target, pairwise_user_text, parse_pairwise, pointwise_user_text
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.steps import extract_final_answer, parse_step, segment_steps, step_content, step_header
from presrm.tasks import load_task
from presrm.tasks.base import Task
from presrm.train.eft import (
    build_eft_pairs,
    eft_examples,
    ift_examples,
    judge_check,
    judge_examples,
    point_items,
    pointwise_examples,
    step_result,
)
from presrm.train.eft_jsonl import eft_train_test_split, load_eft_jsonl
from presrm.train.examples import JudgePair


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy("tiny", device="cpu")


@pytest.fixture(scope="module")
def task() -> Task:
    return load_task("arith", {"n_ops": 3})


# ---------------------------------------------------------------------------------------------
# IFT


def test_ift_solution_parses_back_with_the_step_format(policy: Policy, task: Task) -> None:
    problems = task.sample(20, "train", seed=1)
    examples = ift_examples(policy, task, problems)
    assert len(examples) == len(problems)
    for ex, problem in zip(examples, problems, strict=True):
        assert ex.prompt == policy.solution_prompt(problem.question)
        assert ex.eos and ex.completion.endswith("The answer is " + problem.answer + ".\n")
        steps = segment_steps(ex.completion)
        assert steps == task.reference_steps(problem)
        assert extract_final_answer(steps[-1]) == problem.answer
        # Every line is one step the search would accept as written.
        lines = ex.completion.splitlines()
        for k, line in enumerate(lines, start=1):
            parsed = parse_step(line.removeprefix(step_header(k)), k)
            assert parsed.text == line
            assert task.check_step(problem, lines[: k - 1], line) is True
        assert parse_step(lines[-1].removeprefix(step_header(len(lines))), len(lines)).is_final


def test_ift_steps_mode_mirrors_the_search_prefix(policy: Policy, task: Task) -> None:
    problem = task.sample(1, "train", seed=2)[0]
    examples = ift_examples(policy, task, [problem], mode="steps")
    assert len(examples) == len(problem.steps)
    whole = ift_examples(policy, task, [problem])[0]
    for k, ex in enumerate(examples, start=1):
        # Each example is the whole solution cut after step k, its prompt ending at "Step k:".
        assert (whole.prompt + whole.completion).startswith(ex.prompt + ex.completion)
        assert ex.prompt.endswith("\n" + step_header(k))
        assert ex.completion == f" {problem.steps[k - 1]}\n"
        assert ex.eos is (k == len(problem.steps))  # EOS only after the final step
    assert whole.prompt + whole.completion == examples[-1].prompt + examples[-1].completion
    both = ift_examples(policy, task, [problem], mode="both")
    assert both == [whole, *examples]
    with pytest.raises(ValueError):
        ift_examples(policy, task, [problem], mode="lines")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# EFT pairs


def _good_and_bad(pair: JudgePair) -> tuple[str, str]:
    return (pair.step_a, pair.step_b) if pair.verdict == "A" else (pair.step_b, pair.step_a)


def test_eft_pairs_are_balanced_consistent_and_never_equal(task: Task) -> None:
    problems = task.sample(30, "train", seed=3)
    by_id = {p.problem_id: p for p in problems}
    pairs = build_eft_pairs(task, problems, random.Random(0), 60)
    assert len(pairs) == 60
    assert Counter(p.verdict for p in pairs) == {"A": 30, "B": 30}
    assert len({p.problem_id for p in pairs}) == 30  # round-robin over every problem
    depths = Counter(len(p.previous_steps) for p in pairs)
    assert len(depths) >= 3  # first steps, middle steps and final answers
    keys = set()
    for pair in pairs:
        problem = by_id[pair.problem_id]
        assert pair.question == problem.question
        depth = len(pair.previous_steps)
        assert list(pair.previous_steps) == task.reference_steps(problem)[:depth]
        good, bad = _good_and_bad(pair)
        assert step_content(good) != step_content(bad)
        assert good.startswith(step_header(depth + 1) + " ") and bad.startswith(step_header(depth + 1) + " ")
        prev = list(pair.previous_steps)
        # Both orders: the checker calls exactly one side right, and it is the verdict's side.
        for shown in (pair, pair.swapped()):
            a_ok = task.check_step(problem, prev, shown.step_a)
            b_ok = task.check_step(problem, prev, shown.step_b)
            assert {a_ok, b_ok} == {True, False}
            assert shown.verdict == ("A" if a_ok else "B")
        assert pair.check == problem.steps[depth]  # the correct recomputation, e.g. "19 - 5 = 14"
        keys.add((pair.problem_id, depth, bad))
    assert len(keys) == len(pairs)  # no duplicates


def test_eft_pairs_are_deterministic_and_odd_counts_stay_balanced(task: Task) -> None:
    problems = task.sample(10, "train", seed=4)
    first = build_eft_pairs(task, problems, random.Random(7), 11)
    assert first == build_eft_pairs(task, problems, random.Random(7), 11)
    assert first != build_eft_pairs(task, problems, random.Random(8), 11)
    counts = Counter(p.verdict for p in first)
    assert abs(counts["A"] - counts["B"]) == 1
    assert build_eft_pairs(task, problems, random.Random(0), 0) == []
    assert build_eft_pairs(task, [], random.Random(0), 5) == []


def test_eft_pairs_stop_when_the_problems_run_out() -> None:
    # One 1-op problem has 2 depths and a handful of distinct corruptions per depth.
    task = load_task("arith", {"n_ops": 1, "max_operand": 5})
    problems = task.sample(1, "train", seed=0)
    pairs = build_eft_pairs(task, problems, random.Random(0), 500)
    assert 2 <= len(pairs) < 500
    assert len({(p.previous_steps, p.step_a, p.step_b) for p in pairs}) == len(pairs)


def test_eft_pairs_without_a_step_checker(tmp_path: Path) -> None:
    rows = [
        {
            "question": f"Ann has {a} pens and buys {b} more. How many?",
            "answer": f"{a} + {b} = {a + b}\n#### {a + b}",
        }
        for a, b in [(3, 4), (10, 7), (21, 5), (8, 8), (14, 2), (6, 30)]
    ]
    path = tmp_path / "gsm.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    task = load_task(f"jsonl:{path}")
    assert not task.has_step_checker
    problems = task.sample(3, "train", seed=0)
    pairs = build_eft_pairs(task, problems, random.Random(0), 8)
    assert len(pairs) == 8
    assert Counter(p.verdict for p in pairs) == {"A": 4, "B": 4}
    for pair in pairs:
        good, bad = _good_and_bad(pair)
        assert step_content(good) != step_content(bad)
        assert pair.check == step_content(good)


# ---------------------------------------------------------------------------------------------
# JSONL


def _row(**over: object) -> dict[str, object]:
    row: dict[str, object] = {
        "question": "Tom has 12 apples. He buys 7 more. How many?",
        "previous_steps": [],
        "step_a": "Step 1: 12 + 7 = 19",
        "step_b": "Step 1: 12 + 7 = 20",
        "verdict": "A",
    }
    row.update(over)
    return row


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_load_eft_jsonl(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "eft.jsonl",
        [
            _row(check="12 + 7 = 19"),
            "",
            _row(
                verdict="B", step_a="Step 1: 12 - 7 = 5", step_b="Step 1: 12 + 7 = 19", reason="adds", id="q1"
            ),
            _row(
                question="Another question?",
                previous_steps=["Step 1: 1 + 1 = 2"],
                step_a="Step 2: x",
                step_b="Step 2: y",
            ),
        ],
    )
    pairs = load_eft_jsonl(path)
    assert [p.verdict for p in pairs] == ["A", "B", "A"]
    assert pairs[0].check == "12 + 7 = 19" and pairs[1].check == "adds" and pairs[2].check is None
    assert pairs[1].problem_id == "q1"
    assert pairs[2].previous_steps == ("Step 1: 1 + 1 = 2",)
    # Without an id, pairs are grouped by question (for the held-out split).
    assert pairs[0].problem_id.startswith("eft-") and pairs[0].problem_id != pairs[2].problem_id
    again = load_eft_jsonl(_write(tmp_path / "again.jsonl", [_row(verdict="B")]))
    assert again[0].problem_id == pairs[0].problem_id


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (_row(verdict="C"), "'verdict' must be"),
        (_row(step_b="Step 1:  12 + 7 = 19"), "same step"),
        (_row(previous_steps="Step 1: 1"), "'previous_steps' must be a list"),
        (_row(question=""), "'question' must be a non-empty string"),
        (_row(step_a=3), "'step_a' must be a non-empty string"),
        (_row(check=5), "'check' must be a string"),
        (_row(judgement="A"), "unknown field(s) judgement"),
        ({"question": "q", "step_a": "a"}, "missing field(s) previous_steps, step_b, verdict"),
    ],
)
def test_load_eft_jsonl_errors_name_the_line(tmp_path: Path, bad: object, message: str) -> None:
    path = _write(tmp_path / "eft.jsonl", [_row(), "", bad])
    with pytest.raises(TaskError) as err:
        load_eft_jsonl(path)
    assert f"{path}:3:" in str(err.value)
    assert message in str(err.value)


def test_load_eft_jsonl_file_errors(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match="not found"):
        load_eft_jsonl(tmp_path / "missing.jsonl")
    with pytest.raises(TaskError, match="no pairs"):
        load_eft_jsonl(_write(tmp_path / "empty.jsonl", ["", "  "]))


# ---------------------------------------------------------------------------------------------
# split and SFT examples


def test_eft_split_holds_out_whole_problems(task: Task) -> None:
    problems = task.sample(40, "train", seed=5)
    pairs = build_eft_pairs(task, problems, random.Random(1), 100)
    train, test = eft_train_test_split(pairs, 25, random.Random(2))
    assert len(test) == 25
    assert not {p.problem_id for p in train} & {p.problem_id for p in test}
    assert set(train) | set(test) <= set(pairs)
    assert len(train) + len(test) >= len(pairs) - 2  # at most the rest of one cut problem is dropped
    assert eft_train_test_split(pairs, 0, random.Random(2)) == (pairs, [])
    # Asking for everything still leaves one problem to train on.
    train_all, test_all = eft_train_test_split(pairs, 10_000, random.Random(2))
    assert train_all and test_all and len({p.problem_id for p in train_all}) == 1


def test_eft_examples_use_the_judge_format(policy: Policy, task: Task) -> None:
    pairs = build_eft_pairs(task, task.sample(6, "train", seed=6), random.Random(3), 12)
    with_check = eft_examples(policy, pairs, with_check=True)
    bare = eft_examples(policy, pairs, with_check=False)
    for pair, ex, ex_bare in zip(pairs, with_check, bare, strict=True):
        user = pairwise_user_text(pair.question, list(pair.previous_steps), pair.step_a, pair.step_b)
        assert ex.prompt == policy.complete_prompt(user) == ex_bare.prompt
        parsed = parse_pairwise(ex.completion)
        assert parsed.verdict == pair.verdict and parsed.check_text == judge_check(pair)
        assert ex.completion.startswith("Check: ")
        recompute = eft_examples(policy, [pair], with_check=True, check_form="recompute")[0]
        assert parse_pairwise(recompute.completion).check_text == pair.check
        assert ex_bare.completion == f"[[{pair.verdict}]]"
        assert ex.eos and ex_bare.eos


def test_pointwise_examples_are_the_pairs_steps_labelled_by_the_checker(policy: Policy, task: Task) -> None:
    pairs = build_eft_pairs(task, task.sample(4, "train", seed=6), random.Random(3), 16)
    # Several corruptions of one reference step: that step is one example, not one per pair.
    goods = {(p.question, p.previous_steps, p.step_a if p.verdict == "A" else p.step_b) for p in pairs}
    bads = {(p.question, p.previous_steps, p.step_b if p.verdict == "A" else p.step_a) for p in pairs}
    assert len(goods) < len(pairs)
    examples = pointwise_examples(policy, pairs)
    assert len(examples) == len(goods) + len(bads) == len(point_items(pairs))
    problems = {p.question: p for p in task.sample(4, "train", seed=6)}
    for item, ex in zip(point_items(pairs), examples, strict=True):
        user = pointwise_user_text(item.question, list(item.previous_steps), item.step)
        assert ex.prompt == policy.complete_prompt(user) and ex.eos
        checked = task.check_step(problems[item.question], list(item.previous_steps), item.step)
        assert ex.completion == ("Yes" if checked else "No") and checked is item.label
    # The warm-up builds its judge examples in the run's judge form.
    assert judge_examples(policy, pairs, JudgeConfig(mode="pointwise")) == examples
    pairwise = judge_examples(policy, pairs, JudgeConfig(mode="pairwise", check=False))
    assert pairwise == eft_examples(policy, pairs, with_check=False)


def test_compare_check_marks_each_candidate_against_the_recomputed_step(task: Task) -> None:
    pairs = build_eft_pairs(task, task.sample(30, "train", seed=5), random.Random(0), 40)
    assert pairs
    for pair in pairs:
        for p in (pair, pair.swapped()):
            check = judge_check(p)
            assert check is not None
            recomputed, _, marks = check.partition("; ")
            good = p.step_a if p.verdict == "A" else p.step_b
            assert recomputed in good  # the right step (for an answer step: its number)
            a_part, b_part = marks.split(", ")
            assert a_part == f"A {step_result(p.step_a)} {'yes' if p.verdict == 'A' else 'no'}"
            assert b_part == f"B {step_result(p.step_b)} {'yes' if p.verdict == 'B' else 'no'}"
            assert parse_pairwise(pairwise_target(p.verdict, check)).verdict == p.verdict
            assert judge_check(p, "recompute") == p.check
    final = JudgePair(
        "x",
        "q",
        ("Step 1: 2 + 3 = 5",),
        "Step 2: The answer is 6.",
        "Step 2: The answer is 5.",
        "B",
        check="The answer is 5.",
    )
    assert judge_check(final) == "5; A 6 no, B 5 yes"
    wordy = JudgePair("x", "q", (), "Step 1: add them", "Step 1: 2 + 3 = 5", "B", check="2 + 3 = 5")
    assert judge_check(wordy) == "2 + 3 = 5"  # a step without a number: the plain check
    with pytest.raises(ValueError, match="check form"):
        judge_check(wordy, "vibes")
