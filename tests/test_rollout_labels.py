"""Math-Shepherd rollout labels: what label_steps samples and counts, and the pairs hard and soft
labels make."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from presrm.model.policy import Policy
from presrm.steps import step_content
from presrm.tasks.base import Problem, Task
from presrm.train.eft_rollouts import pairs_from_labels
from presrm.train.rollout_labels import RolloutSettings, StepLabel, label_steps

PROBLEM = Problem(
    "p1", "Tom has 2 apples and buys 3 more. How many?", "5", ("2 + 3 = 5", "The answer is 5."), "t"
)


def _label(text: str, outcomes: list[bool], *, final: bool | None = None, usable: bool = True) -> StepLabel:
    return StepLabel(
        PROBLEM,
        (),
        text,
        is_final=final is not None,
        usable=usable,
        outcomes=outcomes,
        rollout_tokens=[10] * len(outcomes),
        final_correct=final,
    )


def test_hard_and_soft_estimates() -> None:
    x = _label("Step 1: 2 + 3 = 5", [False, True, True, False])
    assert x.soft() == 0.5 and x.hard() and x.soft(1) == 0.0 and not x.hard(1)
    final = _label("Step 1: The answer is 5.", [], final=True)
    assert final.soft() == 1.0 and final.hard()


def test_pairs_put_the_good_step_first_half_the_time() -> None:
    groups = []
    for i in range(10):
        groups.append(
            [
                _label(f"Step 1: 2 + 3 = 5 ({i})", [True, True, False, True]),
                _label(f"Step 1: 2 + 3 = 6 ({i})", [False, False, False, False]),
                _label(f"Step 1: 2 + 3 = 7 ({i})", [True, False, False, False]),
                _label("Step 1: 2 + 3 =", [], usable=False),
            ]
        )
    hard = pairs_from_labels(groups, "hard", random.Random(0))
    assert len(hard) == 20  # two pairs per prefix: each good step against the one bad step
    assert all("= 6" in (p.step_b if p.verdict == "A" else p.step_a) for p in hard)
    assert sum(p.verdict == "A" for p in hard) == 10
    soft = pairs_from_labels(groups, "soft", random.Random(0))
    # Soft: success rates 0.75, 0.25 and 0: only 0.75 is at least 0.5 above another.
    assert soft and all("= 5" in (p.step_a if p.verdict == "A" else p.step_b) for p in soft)
    assert all(p.check == step_content(p.step_a if p.verdict == "A" else p.step_b) for p in soft)
    assert len(pairs_from_labels(groups, "hard", random.Random(0), n=5)) == 5
    assert (
        pairs_from_labels(
            [[_label("Step 1: a", [True]), _label("Step 1: b", [True])]], "hard", random.Random(0)
        )
        == []
    )


def test_label_steps_runs_rollouts_from_every_candidate(tiny: Policy, arith: Task) -> None:
    problems = arith.sample(2, "eval", seed=0)
    settings = RolloutSettings(rollouts=3, width=2, temperature=1.0, max_step_tokens=300, max_steps=2, seed=1)
    groups, cost = label_steps(tiny, arith, problems, settings)
    labels = [x for g in groups for x in g]
    assert labels and len(groups) >= len(problems)
    rolled = [x for x in labels if x.usable and not x.is_final]
    assert rolled, "some random candidates end their line within the token limit"
    assert all(len(x.outcomes) == 3 and len(x.rollout_tokens) == 3 for x in rolled)
    assert cost.rollouts == 3 * len(rolled)
    assert cost.rollout_tokens == sum(sum(x.rollout_tokens) for x in rolled) > 0
    assert all(x.checker is not None for x in labels)  # arith has a step checker: kept next to the labels
    again, _ = label_steps(tiny, arith, problems, settings)
    assert [(x.text, x.outcomes) for g in again for x in g] == [(x.text, x.outcomes) for x in labels]


def test_checker_labels_pair_the_steps_the_step_checker_splits() -> None:
    def checked(text: str, ok: bool | None) -> StepLabel:
        return replace(_label(text, []), checker=ok)

    groups = [
        [
            checked("Step 1: 2 + 3 = 5", True),
            checked("Step 1: 2 + 3 = 6", False),
            checked("Step 1: 2 + 3 = 7", None),
        ],
        [checked("Step 1: 3 + 2 = 5", True), checked("Step 1: 2 + 3 = 5", True)],  # nothing to tell apart
    ]
    pairs = pairs_from_labels(groups, "checker", random.Random(0))
    assert len(pairs) == 1  # rollout outcomes play no part; an unchecked step pairs with nothing
    good, bad = (
        (pairs[0].step_a, pairs[0].step_b) if pairs[0].verdict == "A" else (pairs[0].step_b, pairs[0].step_a)
    )
    assert (good, bad) == ("Step 1: 2 + 3 = 5", "Step 1: 2 + 3 = 6")
    with pytest.raises(ValueError, match="hard, soft, checker"):
        pairs_from_labels(groups, "oracle", random.Random(0))


def test_label_steps_without_rollouts_keeps_only_the_checker(tiny: Policy, arith: Task) -> None:
    problems = arith.sample(2, "eval", seed=0)
    settings = RolloutSettings(rollouts=3, width=2, temperature=1.0, max_step_tokens=300, max_steps=2, seed=1)
    groups, cost = label_steps(tiny, arith, problems, settings, with_rollouts=False)
    labels = [x for g in groups for x in g]
    assert labels and cost.rollouts == cost.rollout_tokens == 0
    assert all(x.outcomes == [] and x.checker is not None for x in labels)
    with_rollouts, _ = label_steps(tiny, arith, problems, settings)
    assert [x.text for g in with_rollouts for x in g] == [x.text for x in labels]  # the same candidates
