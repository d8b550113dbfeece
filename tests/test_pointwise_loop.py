"""The pointwise judge for real on the tiny model: the warm-up trains it in its own form (Yes/No to
"is this next step correct?"), held-out steps measure it, and the search judges with its P(Yes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from presrm.config import load_config
from presrm.judge_format import POINTWISE_TOKENS, pointwise_user_text
from presrm.metrics import auroc
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.model.scoring import next_token_logprobs
from presrm.run.start import start_run
from presrm.store.reader import query_rows
from presrm.tasks import load_task

RUN = [
    "model=tiny",
    "problems=2",
    "eval_problems=2",
    "width=3",
    "max_steps=2",
    "iterations=1",
    "eval_search=false",
    "judge.mode='pointwise'",
    "warmup.ift_examples=4",
    "warmup.eft_examples=6",
    "warmup.eft_test_examples=4",
    "warmup.batch_size=4",
    # Measured: 40 full fine-tuning updates lift P(Yes) + P(No) after the pointwise prompt from 0.02
    # to 0.48 (LoRA moves it to 0.05 only; a pairwise-form warm-up lowers it to 0.001).
    "warmup.lr=1e-2",
    "warmup.epochs=10",
    "sampling.max_step_tokens=8",
    "train.finetune=full",
    "train.dpo.batch_size=2",
    "train.empty_stage='skip'",
]


def _answer_mass(policy: Policy, prompt: str) -> float:
    """P(Yes) + P(No) as the next token (before renormalising over the two)."""
    return float(next_token_logprobs(policy, [prompt], list(POINTWISE_TOKENS)).exp().sum())


def test_pointwise_judge_is_trained_measured_and_searched_with(tmp_path: Path) -> None:
    path = start_run(load_config(None, [*RUN, f"out={str(tmp_path / 'run.duckdb')!r}"]))
    stages = query_rows(path, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "warmup"), (1, "eval"), (2, "search"), (2, "train"), (2, "eval")]
    # The warm-up trained on its pairs' steps in the pointwise form.
    detail = json.loads(query_rows(path, "SELECT detail FROM stages WHERE stage = 'warmup'")[0][0])
    assert detail["eft_pairs"] > 0
    problem = load_task("arith").sample(1, "eval", seed=1)[0]
    m0 = load_policy("tiny", seed=0)
    m1 = load_checkpoint(query_rows(path, "SELECT checkpoint FROM iterations WHERE iteration = 1")[0][0])
    prompt = m0.complete_prompt(pointwise_user_text(problem.question, [], "Step 1: " + problem.steps[0]))
    before, after = _answer_mass(m0, prompt), _answer_mass(m1, prompt)
    assert before < 0.1 < 0.25 < after, (before, after)  # M1 answers the pointwise question with Yes/No
    # Every judgment is pointwise, in the search and on the held-out steps alike.
    assert query_rows(path, "SELECT DISTINCT mode FROM judgments") == [("pointwise",)]
    search = query_rows(
        path,
        "SELECT j.p_a, j.p_b, j.verdict, n.self_score, n.score_kind FROM judgments j"
        " JOIN nodes n ON n.node_id = j.node_a WHERE j.phase = 'train'",
    )
    assert search, "the width-3 search judged its candidates"
    for p_yes, p_no, verdict, score, kind in search:
        assert 0.0 <= p_yes <= 1.0 and p_yes + p_no == pytest.approx(1.0)
        assert verdict == ("Yes" if p_yes >= 0.5 else "No")
        assert kind == "p_yes" and score == pytest.approx(p_yes)  # the search selects by P(Yes)
    assert query_rows(path, "SELECT count(*) FROM judgments WHERE node_b IS NOT NULL") == [(0,)]
    # Held-out steps, judged alone in every eval; their metrics are stored under pointwise names.
    held = query_rows(
        path,
        "SELECT j.iteration, p_a, expected = 'Yes', n.step_check FROM judgments j"
        " JOIN nodes n ON n.node_id = j.node_a WHERE j.phase = 'eft_test' ORDER BY j.iteration",
    )
    assert {r[0] for r in held} == {0, 1, 2}
    assert all(label == check for _, _, label, check in held)  # labelled as the step checker says
    stored = dict(
        query_rows(
            path, "SELECT metric, value FROM eval_metrics WHERE iteration = 1 AND metric LIKE '%point%'"
        )
    )
    m1 = [(p, bool(y)) for it, p, y, _ in held if it == 1]
    assert stored["n_pointwise_steps"] == len(m1) and {y for _, y in m1} == {True, False}
    assert stored["pointwise_accuracy"] == pytest.approx(sum((p > 0.5) == y for p, y in m1) / len(m1))
    assert stored["pointwise_auroc"] == pytest.approx(auroc([p for p, _ in m1], [y for _, y in m1]))
    names = {r[0] for r in query_rows(path, "SELECT DISTINCT metric FROM eval_metrics")}
    assert not names & {"judge_accuracy", "judge_accuracy_order0", "n_eft_pairs"}  # not beside Table 3
