"""A training stage without training data stops the run with its cause, unless train.empty_stage = skip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from presrm.config import JudgeConfig, load_config
from presrm.errors import PresrmError
from presrm.model.policy import Policy
from presrm.run.empty_stage import EmptyStageError
from presrm.run.loop import Loop
from presrm.search.judge import JudgeResult, PairRequest, PointRequest
from presrm.search.modes.pairwise import PairwiseMode
from presrm.store.reader import query_rows
from presrm.store.writer import RunStore

SMALL = [
    "model=tiny",
    "problems=3",
    "eval_problems=1",
    "width=3",
    "max_steps=3",
    "iterations=1",
    "eval_search=false",
    "warmup.enabled=false",
    "warmup.eft_test_examples=0",
    "sampling.max_step_tokens=6",
    "sampling.temperature=1.5",
    "train.finetune=lora",
]


class UnparseableJudge:
    """A judge whose text never holds a verdict (what the chat models' cut-off judgments did)."""

    mode = "pairwise"

    def __init__(self, policy: Policy, cfg: JudgeConfig) -> None:
        pass

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        return [JudgeResult(None, "Step 2: 18 - 19 = 18", None, None, None) for _ in requests]

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        raise NotImplementedError


class FirstShownJudge(UnparseableJudge):
    """Verdicts that parse but follow the position (what SmolLM2's judge did after its warm-up)."""

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        return [JudgeResult("A", "Check: looks right. [[A]]", None, None, None) for _ in requests]


def _loop(tmp_path: Path, *extra: str, judge: type = UnparseableJudge) -> Loop:
    cfg = load_config(None, [*SMALL, *extra, f"out={json.dumps(str(tmp_path / 'run.duckdb'))}"])
    return Loop(RunStore.create(cfg.out, cfg), judge_factory=lambda p, c: PairwiseMode(judge(p, c)))


@pytest.mark.parametrize("algo", ["step-dpo", "ppo"])
def test_no_pairs_is_an_error_naming_the_cause(tmp_path: Path, algo: str) -> None:
    loop = _loop(tmp_path, f"algo={algo!r}", "max_steps=1")
    with pytest.raises(EmptyStageError) as err:
        loop.run()
    message = str(err.value)
    assert isinstance(err.value, PresrmError) and "\n" not in message
    if algo == "step-dpo":
        assert message.startswith(
            "M1 step-dpo: search made 0 preference pairs: 100 % of judge verdicts unparseable"
        )
    else:  # one expansion, every candidate tied and rolled back: no accepted path
        assert message.startswith("M1 ppo: search made 0 PPO rollouts (no accepted path): 100 % of judge")
    assert "rolled back" in message and "train.empty_stage = 'skip'" in message
    # The search is stored; the empty train stage is not, so a resume redoes it.
    stages = query_rows(loop.store.path, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "search")]


def test_a_position_biased_judge_is_named_as_the_cause(tmp_path: Path) -> None:
    loop = _loop(tmp_path, "algo='step-dpo'", "max_steps=1", judge=FirstShownJudge)
    with pytest.raises(EmptyStageError) as err:
        loop.run()
    (n_pairs,) = query_rows(loop.store.path, "SELECT count(*) FROM judge_pairs WHERE phase = 'train'")[0]
    assert n_pairs > 0
    assert "0 % of judge verdicts unparseable" in str(err.value)
    assert f"{n_pairs} of {n_pairs} pairs named different steps in the two orders (position bias" in str(
        err.value
    )


def test_skip_keeps_the_model_and_goes_on(tmp_path: Path) -> None:
    loop = _loop(tmp_path, "train.empty_stage='skip'")
    loop.run()
    stages = query_rows(loop.store.path, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "search"), (1, "train"), (1, "eval")]
    detail = json.loads(query_rows(loop.store.path, "SELECT detail FROM stages WHERE stage = 'train'")[0][0])
    assert detail["examples"] == 0 and detail["updates"] == 0


def test_an_empty_warmup_is_an_error(tmp_path: Path) -> None:
    loop = _loop(tmp_path, "warmup.enabled=true", "warmup.ift_examples=0", "warmup.eft_examples=0")
    with pytest.raises(EmptyStageError, match="M1 the warm-up has 0 examples .warmup.ift_examples = 0"):
        loop.run()
