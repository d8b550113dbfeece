"""ModelJudge on the tiny model: pairwise text + probabilities, likelihood, pointwise."""

from __future__ import annotations

import pytest

from presrm.config import JudgeConfig
from presrm.judge_format import parse_pairwise, verdict_prefix
from presrm.model.scoring import sequence_logprobs
from presrm.search.judge import ModelJudge, PairRequest, PointRequest, resolve_judge_mode

Q = "Tom has 12 apples. He buys 7 more, then gives away 5. How many apples does he have now?"
REQS = [
    PairRequest(Q, (), "Step 1: 12 + 7 = 19", "Step 1: 12 + 7 = 18"),
    PairRequest(Q, (), "Step 1: 12 + 7 = 18", "Step 1: 12 + 7 = 19"),
    PairRequest(Q, ("Step 1: 12 + 7 = 19",), "Step 2: 19 - 5 = 14", "Step 2: 19 + 5 = 24"),
]


def test_pairwise_text_judge_logs_text_and_probabilities(tiny) -> None:
    judge = ModelJudge(tiny, JudgeConfig(mode="pairwise", verdict="text", max_judge_tokens=6))
    results = judge.pairwise(REQS)
    assert len(results) == len(REQS)
    for res in results:
        assert res.p_a is not None and res.p_b is not None
        assert res.p_a + res.p_b == pytest.approx(1.0)
        # the verdict is exactly what the text says (a random model's text has none)
        assert res.verdict == parse_pairwise(res.raw_output).verdict


def test_pairwise_probs_verdict_follows_the_probabilities(tiny) -> None:
    judge = ModelJudge(tiny, JudgeConfig(mode="pairwise", verdict="probs", max_judge_tokens=4))
    for res in judge.pairwise(REQS):
        assert res.verdict == ("A" if res.p_a >= res.p_b else "B")


def test_likelihood_judge_compares_the_policys_own_logprobs(tiny) -> None:
    judge = ModelJudge(tiny, JudgeConfig(mode="likelihood"))
    results = judge.pairwise(REQS)
    prompt = tiny.solution_prompt(Q)
    lp = sequence_logprobs(tiny, [prompt + "Step 1:"] * 2, [" 12 + 7 = 19\n", " 12 + 7 = 18\n"])
    expected = "A" if lp[0] >= lp[1] else "B"
    assert results[0].verdict == expected
    # the same pair in the other order gets the mirrored verdict: always consistent
    assert results[1].verdict == ("B" if expected == "A" else "A")
    assert results[0].p_a == pytest.approx(results[1].p_b)
    assert "logp(A)=" in results[0].raw_output


def test_pointwise_gives_p_yes(tiny) -> None:
    judge = ModelJudge(tiny, JudgeConfig(mode="pointwise"))
    (res,) = judge.pointwise([PointRequest(Q, (), "Step 1: 12 + 7 = 19")])
    assert res.verdict in ("Yes", "No")
    assert 0.0 < res.p_a < 1.0 and res.p_a + res.p_b == pytest.approx(1.0)


def test_auto_mode(tiny) -> None:
    assert resolve_judge_mode("auto", tiny) == "likelihood"  # raw LM, no chat template
    assert resolve_judge_mode("pairwise", tiny) == "pairwise"


def test_verdict_prefix() -> None:
    assert verdict_prefix("Check: 1 + 1 = 2. [[A]]") == "Check: 1 + 1 = 2. [["
    assert verdict_prefix("no verdict here") == "no verdict here [["
    assert verdict_prefix("") == "[["
