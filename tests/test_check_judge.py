"""The check judge: the written re-computations of a step's equations, the share that agrees, the
search that scores candidates by it, and a loop that stores its judgments under their own mode."""

from __future__ import annotations

from pathlib import Path

import pytest

from presrm.config import JudgeConfig, load_config
from presrm.model.generation import generate_steps
from presrm.model.policy import Policy
from presrm.run.empty_stage import EmptyStageError
from presrm.run.loop import Loop
from presrm.search.check_judge import UNCHECKED, CheckJudge, _same_number, equation_checks
from presrm.search.judge import PairRequest, PointRequest
from presrm.search.judges import make_judge
from presrm.search.modes.check import CheckMode
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.steps import render_prefix, step_header
from presrm.store.reader import query_rows
from presrm.store.writer import RunStore
from presrm.tasks.base import Task


def _as_tuples(step: str) -> list[tuple[str, bool, str]]:
    return [(c.expression, c.in_context, c.expected) for c in equation_checks(step)]


def test_a_sum_is_checked_by_both_differences_and_recomputed_after_the_question() -> None:
    assert _as_tuples("Step 1: 12 + 7 = 19") == [
        ("19 - 7 =", True, "12"),
        ("19 - 12 =", True, "7"),
        ("12 + 7 =", False, "19"),
    ]


def test_a_difference_and_a_quotient_are_checked_without_swapping_operands() -> None:
    assert _as_tuples("Step 2: 20 - 5 = 15") == [
        ("15 + 5 =", True, "20"),
        ("20 - 15 =", True, "5"),
        ("20 - 5 =", False, "15"),
    ]
    assert _as_tuples("Step 1: 12 / 4 = 3") == [
        ("3 * 4 =", True, "12"),
        ("12 / 3 =", True, "4"),
        ("12 / 4 =", False, "3"),
    ]
    assert _as_tuples("Step 1: 6 × 7 = 42")[0] == ("42 / 7 =", True, "6")


def test_every_equation_of_a_step_is_checked_and_prose_has_none() -> None:
    assert len(equation_checks("Step 3: 2 + 3 = 5 and 5 + 1 = 6")) == 6
    assert equation_checks("Step 3: The answer is 19.") == []
    assert equation_checks("Step 1: To find the total, we add the numbers.") == []


@pytest.mark.parametrize(
    ("written", "expected", "same"),
    [
        ("12", "12", True),
        (" 12\n", "12", True),
        ("12.0", "12", True),
        ("-3 apples", "-3", True),
        ("13", "12", False),
        ("", "12", False),
        ("twelve", "12", False),
        ("2.5", "2.5", True),
    ],
)
def test_a_check_passes_only_when_its_first_number_is_the_expected_one(
    written: str, expected: str, same: bool
) -> None:
    assert _same_number(written, expected) is same


def test_scores_are_the_share_of_greedy_checks_that_agree(tiny: Policy, arith: Task) -> None:
    problem = arith.sample(1, "eval", seed=0)[0]
    previous = ("Step 1: 1 + 2 = 3",)
    steps = ["Step 2: 3 + 4 = 7", "Step 2: 9 - 4 = 5", "Step 2: The answer is 7."]
    judge = CheckJudge(tiny)
    results = judge.pointwise([PointRequest(problem.question, previous, s) for s in steps])
    in_context = render_prefix(tiny.solution_prompt(problem.question), list(previous)) + step_header(2)
    question_only = tiny.solution_prompt(problem.question) + step_header(1)
    for step, result in zip(steps[:2], results[:2], strict=True):
        checks = equation_checks(step)
        prefixes = [f"{in_context if c.in_context else question_only} {c.expression}" for c in checks]
        written = [
            s[0].text.strip()
            for s in generate_steps(tiny, prefixes, 1, temperature=0.0, max_new_tokens=8, seed=0)
        ]
        passed = sum(_same_number(w, c.expected) for w, c in zip(written, checks, strict=True))
        assert result.p_a == pytest.approx(passed / len(checks))
        assert result.p_b == pytest.approx(1 - passed / len(checks))
        assert result.verdict == ("Yes" if passed / len(checks) > 0.5 else "No")
        lines = result.raw_output.splitlines()
        assert len(lines) == len(checks)
        for line, check, text in zip(lines, checks, written, strict=True):
            assert line.startswith(f"{check.expression} {text} ")
    assert results[2].verdict is None and results[2].p_a == UNCHECKED


def test_pairwise_prefers_the_step_with_more_passing_checks(tiny: Policy, arith: Task) -> None:
    problem = arith.sample(1, "eval", seed=1)[0]
    a, b = "Step 1: 3 + 4 = 7", "Step 1: The answer is 7."
    judge = CheckJudge(tiny)
    share = judge.pointwise([PointRequest(problem.question, (), a)])[0].p_a
    (pair,) = judge.pairwise([PairRequest(problem.question, (), a, b)])
    assert pair.p_a == share and pair.p_b == UNCHECKED
    assert pair.verdict == ("A" if share > UNCHECKED else "B" if share < UNCHECKED else None)


def test_search_scores_candidates_by_their_checks_and_keeps_the_greedy_step_on_ties(
    tiny: Policy, arith: Task
) -> None:
    problems = arith.sample(4, "eval", seed=2)
    judge = make_judge(tiny, JudgeConfig(mode="check"), arith, max_step_tokens=8)
    assert isinstance(judge, CheckMode) and isinstance(judge.verdicts, CheckJudge)
    settings = SearchSettings(
        width=4, max_steps=2, max_step_tokens=8, greedy_candidate=True, switch_margin=0.0, temperature=1.0
    )
    trees = search(tiny, judge, arith, problems, settings, LocalIds())
    for tree in trees:
        assert {j.mode for j in tree.judgments} == {"check"}
        first_round = [n for n in tree.nodes if n.expansion == 0]
        for node in tree.nodes:
            assert node.score_kind == "check_share" and node.self_score is not None
            assert 0.0 <= node.self_score <= 1.0
        chosen = next(n for n in first_round if n.chosen)
        best = max(n.self_score or 0.0 for n in first_round)
        assert chosen.self_score == best
        if first_round[0].self_score == best:
            assert chosen is first_round[0]


def test_a_loop_with_the_check_judge_stores_its_checks(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            "model=tiny",
            "problems=2",
            "eval_problems=2",
            "width=3",
            "max_steps=2",
            "iterations=1",
            "warmup.enabled=false",
            "warmup.eft_test_examples=4",
            "sampling.max_step_tokens=6",
            "sampling.greedy_candidate=true",
            "judge.mode=check",
            "judge.switch_margin=0.0",
            "train.finetune=lora",
            f"out={str(tmp_path / 'run.duckdb')!r}",
        ],
    )
    store = RunStore.create(cfg.out, cfg)
    # The random tiny model writes no equation, so every step is unchecked and nothing is preferred.
    with pytest.raises(EmptyStageError, match=r"100 % of judged steps had no equation to check"):
        Loop(store).run()
    skip = cfg.model_copy(
        update={
            "out": str(tmp_path / "skip.duckdb"),
            "train": cfg.train.model_copy(update={"empty_stage": "skip"}),
        }
    )
    Loop(RunStore.create(skip.out, skip)).run()
    assert query_rows(skip.out, "SELECT DISTINCT mode FROM judgments") == [("check",)]
    kinds = query_rows(skip.out, "SELECT DISTINCT score_kind FROM nodes WHERE self_score IS NOT NULL")
    assert kinds == [("check_share",)]
    metrics = {r[0] for r in query_rows(skip.out, "SELECT metric FROM eval_metrics")}
    assert {"accuracy_search", "check_accuracy"} <= metrics and "judge_accuracy" not in metrics
