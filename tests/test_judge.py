"""ModelJudge on the tiny model: pairwise text + probabilities, likelihood, pointwise."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from presrm.config import JudgeConfig
from presrm.judge_format import (
    pairwise_user_text,
    parse_pairwise,
    verdict_end,
    verdict_position,
    verdict_prefix,
)
from presrm.model.generation import generate_steps
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.model.scoring import next_token_logprobs, sequence_logprobs
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
    assert {r.verdict_source for r in results} == {"logprob"} and judge.mode == "likelihood"


def test_pointwise_gives_p_yes(tiny) -> None:
    judge = ModelJudge(tiny, JudgeConfig(mode="pointwise"))
    (res,) = judge.pointwise([PointRequest(Q, (), "Step 1: 12 + 7 = 19")])
    assert res.verdict in ("Yes", "No")
    assert 0.0 < res.p_a < 1.0 and res.p_a + res.p_b == pytest.approx(1.0)


def test_auto_mode(tiny) -> None:
    assert resolve_judge_mode("auto", tiny.chat) == "likelihood"  # raw LM, no chat template
    assert resolve_judge_mode("pairwise", tiny.chat) == "pairwise"


def test_verdict_prefix() -> None:
    assert verdict_prefix("Check: 1 + 1 = 2. [[A]]") == "Check: 1 + 1 = 2. [["
    assert verdict_prefix("no verdict here") == "no verdict here [["
    assert verdict_prefix("") == "[["


# What the judge writes, as chat models do: a check over two lines, the verdict, then more text.
WRITTEN = "Check: 12 + 7 = 19\nA 19 yes, B 18 no\n[[A]]"
AFTER = " I hope it is correct.\n\nStep 2: 19 - 5 = 14"


class Writer:
    """A forward hook that makes the model write WRITTEN + AFTER during cached decoding (+1e4 on the
    next character's logit); uncached scoring calls, such as reading P(A)/P(B), pass untouched."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.offset = 0

    def __call__(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        if kwargs.get("use_cache") is not True:
            return output
        self.offset = 0 if kwargs["input_ids"].shape[1] > 1 else self.offset + 1
        text = WRITTEN + AFTER
        bias = torch.zeros(output.logits.shape[-1], dtype=output.logits.dtype)
        bias[self.tokenizer.convert_tokens_to_ids(text[min(self.offset, len(text) - 1)])] = 1e4
        output.logits = output.logits + bias
        return output


@pytest.fixture()
def writing() -> Policy:
    policy = load_policy("tiny", seed=0)
    policy.model.register_forward_hook(Writer(policy.tokenizer), with_kwargs=True)
    return policy


def test_the_judge_writes_past_line_ends_and_stops_at_its_verdict(writing: Policy) -> None:
    prompt = writing.complete_prompt(pairwise_user_text(Q, [], REQS[0].step_a, REQS[0].step_b))
    # The step generator would have cut the judgment at its first line end.
    (cut,) = generate_steps(writing, [prompt], 1, temperature=0.0, max_new_tokens=80, seed=0)[0]
    assert cut.text == "Check: 12 + 7 = 19"
    judge = ModelJudge(writing, JudgeConfig(mode="pairwise", verdict="text", max_judge_tokens=80))
    (res,) = judge.pairwise(REQS[:1])
    assert res.raw_output == WRITTEN  # the whole check, nothing after "]]"
    assert res.check_text == "12 + 7 = 19\nA 19 yes, B 18 no"
    assert (res.verdict, res.verdict_source, res.probs_at) == ("A", "text", "verdict")
    # P(A)/P(B) are read at the written verdict (after its "[["), from the model itself.
    at_verdict = next_token_logprobs(
        writing, [prompt + "Check: 12 + 7 = 19\nA 19 yes, B 18 no\n[["], ["A", "B"]
    )
    p_a = float(torch.softmax(at_verdict[0], dim=-1)[0])
    assert res.p_a == pytest.approx(p_a, abs=1e-5)
    probs = ModelJudge(writing, JudgeConfig(mode="pairwise", verdict="probs", max_judge_tokens=80))
    (by_probs,) = probs.pairwise(REQS[:1])
    assert by_probs.verdict == ("A" if p_a >= 0.5 else "B") and by_probs.verdict_source == "probs"
    # A token limit before the verdict: no verdict, probabilities after an appended "[[".
    short = ModelJudge(writing, JudgeConfig(mode="pairwise", verdict="text", max_judge_tokens=12))
    (cut_short,) = short.pairwise(REQS[:1])
    assert cut_short.raw_output == WRITTEN[:12] and cut_short.verdict is None
    assert (cut_short.verdict_source, cut_short.probs_at) == (None, "appended")


def test_an_unparseable_judgment_has_no_source_and_appended_probabilities(tiny: Policy) -> None:
    judge = ModelJudge(tiny, JudgeConfig(mode="pairwise", verdict="text", max_judge_tokens=6))
    for res in judge.pairwise(REQS):
        if res.verdict is None:  # a random model's text has no verdict
            assert res.verdict_source is None and res.probs_at == "appended"
            assert res.p_a is not None


def test_verdict_position() -> None:
    assert verdict_position("Let's check.\nA is right.\n[[A]]") == (
        "Let's check.\nA is right.\n[[",
        "verdict",
    )
    assert verdict_position("Check: 7 [[ B ]]") == ("Check: 7 [[ ", "verdict")
    assert verdict_position("Check: 7 [[") == ("Check: 7 [[", "verdict")  # cut by the token limit
    assert verdict_position("Check: 7\n") == ("Check: 7 [[", "appended")
    assert verdict_end("A looks right [[A]] and more") == len("A looks right [[A]]")
    assert verdict_end("no verdict [[C]]") is None


def test_every_configurable_judge_mode_is_registered() -> None:
    """JudgeConfig.mode offers exactly the registered modes (plus auto), and auto's two choices
    agree on what is read without a policy (the empty-stage message, the warm-up's form)."""
    import typing

    from presrm.search.judges import MODES, mode_class

    assert set(typing.get_args(JudgeConfig.model_fields["mode"].annotation)) == {"auto", *MODES}
    chat, raw = mode_class("auto", chat=True), mode_class("auto", chat=False)
    assert (chat.no_verdict, chat.eft_form) == (raw.no_verdict, raw.eft_form)
