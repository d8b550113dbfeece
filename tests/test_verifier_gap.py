"""The verifier-gap table: selectors, sibling pairs, and a real run on the tiny model."""

from __future__ import annotations

import math

import pytest

from presrm.eval.verifier_gap import (
    Solution,
    _sibling_pairs,
    format_table,
    majority_index,
    sample_solutions,
    verifier_gap,
)
from presrm.model.policy import Policy
from presrm.search.modes.paraphrase import ParaphraseMode
from presrm.search.modes.solution_scores import divergence
from presrm.search.paraphrase import ParaphraseJudge
from presrm.tasks import Task


def _sol(steps: list[str], checks: list[bool | None], answer: str | None, correct: bool) -> Solution:
    return Solution(tuple(steps), tuple(checks), -1.0, answer, correct)


def test_majority_picks_the_most_common_answer_first_occurrence() -> None:
    sols = [_sol(["a"], [True], "3", False), _sol(["b"], [True], "5", True), _sol(["c"], [True], "5", True)]
    assert majority_index(sols) == 1
    assert majority_index([_sol(["a"], [True], None, False)]) == 0


def test_divergence_and_on_policy_sibling_pairs() -> None:
    right = _sol(["Step 1: 2 + 3 = 5", "Step 2: 5 - 1 = 4"], [True, True], "4", True)
    wrong = _sol(["Step 1: 2 + 3 = 5", "Step 2: 5 - 1 = 3"], [True, False], "3", False)
    other_wrong = _sol(["Step 1: 2 + 3 = 6"], [False], "6", False)
    assert divergence(right, wrong) == 1
    assert divergence(right, _sol(["Step 1: 2 + 3 = 5"], [True], None, False)) is None
    pairs = _sibling_pairs("q", [right, wrong, other_wrong, wrong])
    # (right, wrong) at step 2 and (right, other_wrong) at step 1; wrong vs other_wrong are both
    # wrong at step 1 (not a right/wrong pair); the repeated wrong solution adds nothing new
    assert [(r.previous_steps, r.step_a, r.step_b, a_right) for r, a_right in pairs] == [
        (("Step 1: 2 + 3 = 5",), "Step 2: 5 - 1 = 4", "Step 2: 5 - 1 = 3", True),
        ((), "Step 1: 2 + 3 = 5", "Step 1: 2 + 3 = 6", True),
    ]


@pytest.mark.slow
def test_verifier_gap_on_the_tiny_model(tiny: Policy, arith: Task) -> None:
    problems = arith.sample(4, "eval", seed=3)
    table = verifier_gap(
        tiny,
        arith,
        problems,
        k=3,
        max_steps=3,
        max_step_tokens=8,
        check=False,
        modes=("likelihood", "pointwise", "pairwise-probs"),
    )
    assert list(table.outcomes) == [
        "greedy",
        "maj@3",
        "best-of-3: likelihood",
        "best-of-3: pointwise",
        "best-of-3: pairwise-probs",
        "oracle best-of-3: step checker",
        "pass@3",
    ]
    assert all(len(v) == len(problems) for v in table.outcomes.values())
    passed = table.outcomes["pass@3"]
    for name, picks in table.outcomes.items():
        if name != "greedy":  # a pick among the samples is right only where some sample is
            assert all(p <= q for p, q in zip(picks, passed, strict=True)), name
    lines = format_table(table)
    assert lines[0].startswith("| selector (k = 3, T = 0.8)") and any("sibling pairs" in x for x in lines)
    with pytest.raises(ValueError, match="unknown judge mode"):
        verifier_gap(tiny, arith, problems, k=1, modes=("telepathy",))


def test_the_paraphrase_judge_picks_by_votes_and_by_its_graded_score(tiny: Policy, arith: Task) -> None:
    problems = arith.sample(3, "eval", seed=5)
    table = verifier_gap(tiny, arith, problems, k=3, max_steps=2, max_step_tokens=8, modes=("paraphrase",))
    assert "best-of-3: paraphrase" in table.outcomes and "best-of-3: paraphrase, graded" in table.outcomes
    _, samples = sample_solutions(
        tiny, arith, problems, k=3, temperature=0.8, max_steps=2, max_step_tokens=8, seed=0
    )
    judge = ParaphraseJudge(tiny, arith, paraphrases=4, seed=0, max_step_tokens=8)
    picks = []
    for problem, per in zip(problems, samples, strict=True):
        scores = ParaphraseMode(judge).graded_solution_scores(problem.question, per)
        for solution, score in zip(per, scores, strict=True):
            each = [  # every step scored on its own call
                next(iter(judge.wording_probs([(problem.question, solution.steps[:d], [step])])[0].values()))
                for d, step in enumerate(solution.steps)
            ]
            # Compared as logs: a random tiny model gives steps probabilities far below 1e-12.
            assert math.log(score) == pytest.approx(math.log(min(each, default=1.0)), abs=1e-4)
        picks.append(per[max(range(len(per)), key=lambda i: (scores[i], -i))].correct)
    assert table.outcomes["best-of-3: paraphrase, graded"] == picks
