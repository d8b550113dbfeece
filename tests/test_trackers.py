"""report_to: a tiny run's warm-up (TRL's own TensorBoard / Trackio callbacks), PPO (metrics
forwarded by the loop), search and eval scalars land in TensorBoard event files and in Trackio's
local store, named by run id and iteration; a tracker whose package is missing is one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from presrm.config import load_config
from presrm.errors import PresrmError
from presrm.run.loop import Loop
from presrm.run.start import start_run
from presrm.store.reader import query_rows
from presrm.store.writer import RunStore
from presrm.trackers import TrackerError, check_trackers
from tests.test_loop import SMALL, longer_step_judge

TRACKED = [
    *SMALL,
    "algo=ppo",
    "warmup.enabled=true",
    "warmup.ift_examples=4",
    "warmup.eft_examples=4",
    "warmup.batch_size=4",
]


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of one TensorBoard run folder, read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.mark.slow
def test_tiny_run_reports_to_tensorboard_and_trackio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Trackio reads TRACKIO_DIR when first imported; this test is the suite's only importer.
    monkeypatch.setenv("TRACKIO_DIR", str(tmp_path / "trackio"))
    out = tmp_path / "run.duckdb"
    cfg = load_config(None, [*TRACKED, 'report_to=["tensorboard", "trackio"]', f"out={str(out)!r}"])
    store = RunStore.create(cfg.out, cfg)
    Loop(store, judge_factory=longer_step_judge).run()
    run_id = store.run_id

    board = tmp_path / "run.trackers" / "tensorboard" / run_id
    assert sorted(p.name for p in board.iterdir()) == [
        "M0-eval",
        "M1-eval",
        "M1-warmup",
        "M2-eval",
        "M2-ppo",
        "M2-search",
    ]
    warmup = _scalars(board / "M1-warmup")  # written by TRL's TensorBoardCallback
    assert "train/loss" in warmup and len(warmup["train/loss"]) >= 1
    ppo = _scalars(board / "M2-ppo")  # forwarded by the loop: the same values as the run file
    stored = query_rows(
        out, "SELECT step, value FROM train_steps WHERE stage = 'ppo' AND metric = 'kl' ORDER BY step"
    )
    assert [(s, pytest.approx(v)) for s, v in ppo["train/kl"]] == stored
    assert {"train/policy_loss", "train/value_loss", "train/reward_mean"} <= set(ppo)
    evals = _scalars(board / "M2-eval")
    (greedy,) = query_rows(
        out, "SELECT value FROM eval_metrics WHERE iteration = 2 AND metric = 'accuracy_greedy'"
    )
    assert evals["eval/accuracy_greedy"] == [(2, pytest.approx(greedy[0]))]  # at step = iteration
    assert "eval/accuracy_greedy_low" in evals and "eval/accuracy_greedy_high" in evals  # its interval
    search = _scalars(board / "M2-search")
    (judged,) = query_rows(out, "SELECT count(*) FROM judgments WHERE iteration = 2 AND phase = 'train'")
    assert search["search/judgments"] == [(2, float(judged[0]))]
    assert "search/unparseable_rate" in search

    from trackio.sqlite_storage import SQLiteStorage

    runs = SQLiteStorage.get_runs("presrm")
    assert {f"{run_id}-M1-warmup", f"{run_id}-M2-ppo", f"{run_id}-M2-eval"} <= set(runs)
    ppo_logs = SQLiteStorage.get_logs("presrm", f"{run_id}-M2-ppo")
    assert [(row["step"], pytest.approx(row["train/kl"])) for row in ppo_logs] == stored
    warmup_logs = SQLiteStorage.get_logs("presrm", f"{run_id}-M1-warmup")  # TRL's TrackioCallback
    assert any("train/loss" in row for row in warmup_logs)
    eval_logs = SQLiteStorage.get_logs("presrm", f"{run_id}-M2-eval")
    assert [(row["step"], pytest.approx(row["eval/accuracy_greedy"])) for row in eval_logs] == [
        (2, greedy[0])
    ]


def test_a_missing_tracker_is_one_line_naming_its_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    check_trackers(["none"])  # the default needs nothing
    monkeypatch.setitem(sys.modules, "wandb", None)  # how Python marks a module as not importable
    with pytest.raises(
        TrackerError, match=r"^report_to = 'wandb' needs the wandb package: pip install 'presrm\[wandb\]'$"
    ):
        check_trackers(["tensorboard", "wandb"])
    out = tmp_path / "run.duckdb"
    cfg = load_config(None, [*SMALL, "report_to='wandb'", f"out={str(out)!r}"])
    with pytest.raises(PresrmError, match="presrm\\[wandb\\]"):
        start_run(cfg)
    assert not out.exists(), "refused before the run file is created"
