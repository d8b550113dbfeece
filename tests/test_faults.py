"""Real processes: Ctrl-C stops at a safe point and resumes; a reader open during a whole run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from presrm.store import query_rows

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
ARGS = [
    "--set", "model=tiny", "--set", "problems=6", "--set", "eval_problems=3", "--set", "width=2",
    "--set", "max_steps=3", "--set", "iterations=1", "--set", "warmup.enabled=false",
    "--set", "warmup.eft_test_examples=0", "--set", "sampling.max_step_tokens=6", "--set", "batch_problems=1",
    "--set", "judge.verdict=probs", "--set", "judge.check=false", "--set", "eval_search=false",
]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "presrm.cli", *args]


def _count(path: Path, sql: str) -> int | None:
    try:
        return int(query_rows(path, sql, timeout=1)[0][0])
    except Exception:
        return None


@pytest.mark.slow
def test_sigint_stops_at_a_safe_point_and_says_how_to_resume(tmp_path: Path) -> None:
    run = tmp_path / "run.duckdb"
    proc = subprocess.Popen(_cli("run", *ARGS, "--out", str(run)), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if run.exists() and (_count(run, "SELECT count(*) FROM nodes") or 0) > 0:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"presrm run --resume {run}" in err
    finished = query_rows(run, "SELECT count(*) FROM stages")[0][0]
    resumed = subprocess.run(_cli("run", "--resume", str(run)), env=ENV, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    stages = query_rows(run, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "search"), (1, "train"), (1, "eval")]
    assert len(stages) > finished
    # no duplicates after the interrupted stage was redone
    assert query_rows(run, "SELECT count(*) = count(DISTINCT node_id) FROM nodes")[0][0]


@pytest.mark.slow
def test_reader_open_during_the_whole_run(tmp_path: Path) -> None:
    run = tmp_path / "run.duckdb"
    proc = subprocess.Popen(_cli("run", *ARGS, "--out", str(run)), env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    seen: list[int] = []  # this test process is the reader: it polls the file the whole time
    cli_answers = 0
    while proc.poll() is None:
        n = _count(run, "SELECT count(*) FROM nodes") if run.exists() else None
        if n is not None:
            seen.append(n)
            if cli_answers == 0:  # and `presrm sql`, as a user would run it, answers mid-run
                result = subprocess.run(_cli("sql", str(run), "SELECT count(*) FROM nodes", "-f", "csv"),
                                        env=ENV, capture_output=True, text=True)
                cli_answers += result.returncode == 0
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    final = query_rows(run, "SELECT count(*) FROM nodes")[0][0]
    assert seen, "the reader never got an answer while the run was writing"
    assert seen == sorted(seen), "the reader sees progress, never a rollback"
    assert len(set(seen)) >= 2 and seen[-1] <= final
    assert cli_answers == 1
