"""algo = "rft": fine-tuning on the search's self-verified solutions, with replay of the base's data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from presrm.config import RFTConfig, load_config
from presrm.errors import PresrmError
from presrm.model.loading import load_checkpoint, load_policy
from presrm.run.start import start_run
from presrm.store.reader import query_rows
from presrm.train.examples import SFTExample
from presrm.train.rft import (
    check_level_examples,
    level_below_examples,
    replay_examples,
    round_data,
    verified_examples,
)


def _examples(n: int, tag: str) -> list[SFTExample]:
    return [SFTExample(f"{tag}{i}", "x") for i in range(n)]


def test_round_data_gives_the_verified_their_share() -> None:
    verified, replay = _examples(10, "v"), _examples(100, "r")
    assert len(round_data(verified, replay, 0.25)) == 40  # 10 verified are a quarter of 40
    assert round_data(verified, replay, 1.0) == verified
    assert len(round_data(verified, replay[:5], 0.1)) == 15  # all the replay there is
    assert round_data([], replay, 0.25) == []  # no verified solution: nothing to train on
    assert round_data(verified, replay, 0.25, control=True) == replay  # the control: replay alone
    # The matched control: the self-trained arm's replay, its verified solutions left out.
    assert round_data(verified, replay, 0.25, control=True, matched=True) == replay[:30]
    assert round_data([], replay, 0.25, control=True, matched=True) == []


def test_base_replay_needs_the_default_model() -> None:
    policy = load_policy("tiny", device="cpu", seed=0)
    with pytest.raises(PresrmError, match="replay = 'none'"):
        replay_examples(policy, "tiny", RFTConfig(), seed=0, below=3)
    assert replay_examples(policy, "tiny", RFTConfig(replay="none"), seed=0, below=3) == []


def test_default_replay_holds_no_solution_of_the_level_taught_or_above() -> None:
    policy = load_policy("default", device="cpu")
    below_3 = replay_examples(policy, "default", RFTConfig(), seed=0, below=3)
    below_4 = replay_examples(policy, "default", RFTConfig(), seed=0, below=4)
    ops = [{e.completion.count("Step ") - 1 for e in pool} for pool in (below_3, below_4)]
    assert ops == [{1, 2}, {1, 2, 3}]  # the base's 3-op kind only when 3 is below the level taught
    assert len(below_3) > 10_000 and len(below_4) > len(below_3)


def test_the_level_below_the_taught_one_is_replayed_as_often_as_the_verified() -> None:
    policy = load_policy("default", device="cpu")
    cfg, three, four = RFTConfig(), {"n_ops": 3}, {"n_ops": 4}
    below_4 = level_below_examples(policy, "default", cfg, 0, options=three, count=37)
    assert len(below_4) == 37
    assert {e.completion.count("Step ") - 1 for e in below_4} == {3}
    assert len(set(below_4)) == 37  # fresh problems, not one repeated
    assert level_below_examples(policy, "default", cfg, 1, options=three, count=37) != below_4
    # The base was never trained on 4 operations: a level the loop taught itself has no gold data.
    assert level_below_examples(policy, "default", cfg, 0, options=four, count=10) == []
    off = [RFTConfig(balance_below=False), RFTConfig(replay="none")]
    assert all(level_below_examples(policy, "default", c, 0, options=three, count=10) == [] for c in off)
    assert level_below_examples(policy, "default", cfg, 0, options=three, count=0) == []


def test_the_checks_level_is_added_as_often_as_the_verified_when_asked() -> None:
    policy = load_policy("default", device="cpu")
    on = RFTConfig(balance_checks=True)
    checks = check_level_examples(policy, "default", on, 0, count=41)
    assert len(checks) == 41 and len(set(checks)) == 41
    assert {e.completion.count("Step ") - 1 for e in checks} == {1}  # the questions the judge asks
    # Start amounts as wide as the base's own 1-op kind, beyond the 2-op task's 20.
    starts = [int(re.findall(r"\d+", e.prompt)[0]) for e in checks]
    assert max(starts) > 20
    assert check_level_examples(policy, "default", on, 1, count=41) != checks
    below = level_below_examples(policy, "default", on, 0, options={"n_ops": 1}, count=41)
    assert {e.prompt for e in below}.isdisjoint(e.prompt for e in checks)  # drawn apart
    off = [RFTConfig(), RFTConfig(balance_checks=True, replay="none")]
    assert all(check_level_examples(policy, "default", c, 0, count=10) == [] for c in off)
    assert check_level_examples(policy, "default", on, 0, count=0) == []
    tiny = load_policy("tiny", device="cpu", seed=0)
    assert check_level_examples(tiny, "tiny", on, 0, count=5) == []


def test_a_run_trains_on_the_paths_whose_every_step_was_accepted(tmp_path: Path) -> None:
    run = [
        "model=default",
        "problems=6",
        "eval_problems=2",
        "width=2",
        "max_steps=4",
        "iterations=1",
        "eval_search=false",
        "warmup.enabled=false",
        "warmup.eft_test_examples=0",
        "judge.mode='repose'",
        "algo='rft'",
        "train.rft.updates=3",
        "train.rft.batch_size=4",
        "train.rft.self_share=0.5",
        "train.rft.min_score=0.0",  # every answered path: training happens whatever the base judges
        "train.rft.balance_checks=true",
        f"out={str(tmp_path / 'run.duckdb')!r}",
    ]
    path = start_run(load_config(None, run))
    m0 = load_policy("default", device="cpu")
    for threshold in (0.0, 0.5, 1.0):
        # The same paths by SQL: chosen, ending in an answer, no step scored below the threshold.
        by_sql = query_rows(
            path,
            "SELECT count(*) FROM (SELECT tree_id FROM nodes WHERE iteration = 1 AND phase = 'train' AND chosen"
            " AND NOT rolled_back GROUP BY tree_id HAVING bool_or(is_final) AND min(coalesce(self_score, 1)) >= ?)",
            [threshold],
        )[0][0]
        assert len(verified_examples(path, m0, 1, threshold)) == by_sql
    kept = verified_examples(path, m0, 1, 0.0)
    assert len(kept) == 6
    assert all(e.prompt.startswith("Question: ") and e.completion.startswith("Step 1: ") for e in kept)
    detail = json.loads(query_rows(path, "SELECT detail FROM stages WHERE stage = 'train'")[0][0])
    # Replay: as much of the base's data as the verified, as many of its 1-op solutions as the
    # level below the 2-op one taught here, and as many again as the judge's own check level.
    assert (
        detail["algo"],
        detail["verified"],
        detail["replay"],
        detail["level_below"],
        detail["check_level"],
        detail["updates"],
    ) == (
        "rft",
        len(kept),
        3 * len(kept),
        len(kept),
        len(kept),
        3,
    )
    steps = query_rows(path, "SELECT count(*) FROM train_steps WHERE stage = 'rft' AND metric = 'loss'")
    assert steps == [(3,)]
    m1 = load_checkpoint(query_rows(path, "SELECT checkpoint FROM iterations WHERE iteration = 1")[0][0])
    before, after = m0.model.state_dict(), m1.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("replay", ["all", "matched"])
def test_the_control_trains_the_same_updates_on_the_replay_alone(tmp_path: Path, replay: str) -> None:
    run = [
        f"train.rft.control_replay={replay!r}",
        "model=default",
        "problems=2",
        "eval_problems=2",
        "width=2",
        "iterations=1",
        "eval_search=false",
        "warmup.enabled=false",
        "warmup.eft_test_examples=0",
        "judge.mode='repose'",
        "algo='rft'",
        "train.rft.control=true",
        "train.rft.updates=2",
        "train.rft.batch_size=4",
        f"out={str(tmp_path / 'run.duckdb')!r}",
    ]
    path = start_run(load_config(None, run))
    detail = json.loads(query_rows(path, "SELECT detail FROM stages WHERE stage = 'train'")[0][0])
    pool = replay_examples(load_policy("default", device="cpu"), "default", RFTConfig(), seed=1, below=2)
    # The same replay as the self-trained arm would get: the pool and the level below, as many of
    # those as the search verified.
    assert detail["level_below"] == detail["verified"] > 0
    # all: the whole pool; matched: as much as the default self_share (0.25) gives the verified.
    drawn = len(pool) if replay == "all" else 3 * detail["verified"]
    assert (detail["examples"], detail["replay"], detail["updates"]) == (0, drawn + detail["verified"], 2)
