"""A run killed under one process count resumes under another: 2 → 1 and 1 → 2 processes.

The kill lands mid-search (a fault point: presrm/faults.py), after part of the stage's trees
were flushed. The resume, under the other process count, must delete them and search every
problem again exactly once; the stages finished before the kill keep their rows byte for byte.
(The rows of a 2-process run differ from a 1-process run's by design: other shards, other
random streams; README, "Multi-process / multi-GPU".)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from run_rows import BUILTIN, assert_ids_dense, stage_rows
from test_distributed import launch

from presrm.store.reader import query_rows

SETTINGS = [
    "model=tiny",
    "device=cpu",
    "iterations=1",
    "problems=4",
    "eval_problems=4",
    "width=2",
    "max_steps=3",
    "eval_search=false",
    "sampling.max_step_tokens=8",
    "judge.check=false",
    "train.batch_size=2",
    "warmup.enabled=false",
    "warmup.eft_test_examples=0",
    "batch_problems=1",
    "algo=step-dpo",
]
SETS = [BUILTIN, *(a for s in SETTINGS for a in ("--set", s))]


def one_process(*args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    if fault:
        env["PRESRM_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "presrm.cli", *args], capture_output=True, text=True, timeout=300, env=env
    )


def one(path: Path, sql: str) -> int:
    return int(query_rows(path, sql)[0][0])


def check_killed_mid_search(run: Path) -> dict:
    finished = stage_rows(run)
    assert set(finished) == {(0, "eval")}
    assert one(run, "SELECT count(*) FROM nodes WHERE phase = 'train'") > 0, "the kill must land mid-search"
    return finished


def check_consistent(run: Path, finished: dict) -> None:
    stages = query_rows(run, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "search"), (1, "train"), (1, "eval")]
    now = stage_rows(run)
    assert {s: now[s] for s in finished} == finished, "a finished stage's rows changed"
    # Every train problem stored once and searched by exactly one tree; every eval problem
    # stored once and evaluated once per iteration.
    assert query_rows(
        run, "SELECT split, count(*), count(DISTINCT problem_id) FROM problems GROUP BY 1 ORDER BY 1"
    ) == [
        ("eval", 4, 4),
        ("train", 4, 4),
    ]
    searched = query_rows(
        run,
        "SELECT p.problem_id, count(DISTINCT n.tree_id) FROM problems p LEFT JOIN nodes n"
        " ON n.problem_id = p.problem_id AND n.phase = 'train' WHERE p.split = 'train' GROUP BY 1",
    )
    assert len(searched) == 4 and all(trees == 1 for _, trees in searched), searched
    evals = query_rows(
        run, "SELECT iteration, count(*), count(DISTINCT problem_id) FROM evals GROUP BY 1 ORDER BY 1"
    )
    assert evals == [(0, 4, 4), (1, 4, 4)]
    assert_ids_dense(run)
    orphans = (
        "SELECT count(*) FROM nodes c LEFT JOIN nodes p ON p.node_id = c.parent_id"
        " WHERE c.parent_id IS NOT NULL AND (p.node_id IS NULL OR p.tree_id <> c.tree_id)"
    )
    assert one(run, orphans) == 0
    assert (
        one(
            run,
            "SELECT count(*) FROM judgments j JOIN nodes a ON a.node_id = j.node_a WHERE a.tree_id <> j.tree_id",
        )
        == 0
    )
    assert one(run, "SELECT count(*) FROM train_steps") > 0


@pytest.mark.slow
def test_killed_under_two_processes_resumes_under_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run.duckdb"
    with monkeypatch.context() as env:  # rank 0 kills itself once its first global batch is stored
        env.setenv("PRESRM_FAULT", "kill:search:1")
        killed = launch("run", *SETS, "--out", str(run))
    assert killed.returncode != 0, killed.stderr[-2000:]
    finished = check_killed_mid_search(run)
    resumed = one_process("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    check_consistent(run, finished)


@pytest.mark.slow
def test_killed_under_one_process_resumes_under_two(tmp_path: Path) -> None:
    run = tmp_path / "run.duckdb"
    killed = one_process("run", *SETS, "--out", str(run), fault="kill:search:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    finished = check_killed_mid_search(run)
    resumed = launch("run", "--resume", str(run))
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    check_consistent(run, finished)
