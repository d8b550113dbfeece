"""A run killed, starved or resumed twice writes exactly the rows of one run left alone.

Every run here is a real process (forked from a warm server: tests/fork_runs.py) that a fault
point (presrm/faults.py) kills with SIGKILL, or starves with an allocation the allocator
refuses, at an exact place; the resumes are real processes too. Each resumed run file is
compared, table by table, with one uninterrupted reference run (tests/run_rows.py).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from fork_runs import ForkRunner
from run_rows import SMALL_ARGS, all_rows, assert_ids_dense, stage_rows

from presrm.faults import POINTS
from presrm.run.checkpoint_io import MANIFEST, is_complete
from presrm.run.lock import lock_path

# Kill points per kind in the sweep (20 in all), drawn with a fixed seed from the points the
# reference run reached; a kind reached fewer times is killed at each of its points.
SWEEP = {"search": 3, "judge": 3, "train": 2, "eval": 2, "flush": 3, "commit": 3, "checkpoint": 2, "stage": 2}
SEED = 29


@pytest.fixture(scope="module")
def runner() -> Iterator[ForkRunner]:
    server = ForkRunner()
    yield server
    server.close()


@pytest.fixture(scope="module")
def reference(runner: ForkRunner, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Counter[str]]:
    """One uninterrupted run, and how many times it reached each fault point."""
    where = tmp_path_factory.mktemp("reference")
    run, points = where / "reference.duckdb", where / "points.log"
    status = runner.run(
        ["run", *SMALL_ARGS, "--out", str(run)], where / "log", {"PRESRM_FAULT_LOG": str(points)}
    )
    assert status == 0, (where / "log").read_text()
    reached: Counter[str] = Counter()
    for line in points.read_text().splitlines():
        name, count = line.split()
        reached[name] = max(reached[name], int(count))
    return run, reached


def _run(runner: ForkRunner, log: Path, *argv: str, fault: str | None = None) -> tuple[int, str]:
    status = runner.run(list(argv), log, {"PRESRM_FAULT": fault} if fault else None)
    return status, log.read_text()


def _one_error_line(log: str) -> str:
    """The run's last words: exactly one ``error:`` line, at the end, and no traceback."""
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and log.rstrip().endswith(errors[0]), log
    return errors[0]


def _assert_same_rows(run: Path, reference: Path) -> None:
    assert all_rows(run) == all_rows(reference)
    assert_ids_dense(run)
    assert not list(run.with_suffix(".ckpt").glob("*.partial")), "a scratch checkpoint was left behind"


@pytest.mark.slow
def test_a_second_resume_while_one_runs_is_refused_and_rows_are_not_doubled(
    runner: ForkRunner, reference: tuple[Path, Counter[str]], tmp_path: Path
) -> None:
    """Before the run lock, two resumes of one killed run both exited 0 and every row was there twice."""
    run = tmp_path / "run.duckdb"
    status, log = _run(
        runner, tmp_path / "killed.log", "run", *SMALL_ARGS, "--out", str(run), fault="kill:stage:1"
    )
    assert status == -signal.SIGKILL, log
    assert set(stage_rows(run)) == {(0, "eval")}
    first = subprocess.Popen(  # a user's `presrm run --resume`
        [sys.executable, "-m", "presrm.cli", "run", "--resume", str(run)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    holder = f"PID {first.pid} on host {socket.gethostname()}"
    deadline = time.monotonic() + 300
    while not (lock_path(run).is_file() and lock_path(run).read_text().startswith(holder)):
        assert first.poll() is None and time.monotonic() < deadline, "the first resume never took the lock"
        time.sleep(0.05)
    status, log = _run(runner, tmp_path / "second.log", "run", "--resume", str(run))
    assert status == 2
    assert _one_error_line(log).startswith(
        f"error: {run} is being written by another presrm process ({holder}"
    )
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    _assert_same_rows(run, reference[0])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "fault", "finished"), [("search", "oom:search:2", 1), ("train", "oom:train:1", 2)]
)
def test_out_of_memory_mid_stage_is_one_line_and_resume_redoes_the_stage(
    runner: ForkRunner,
    reference: tuple[Path, Counter[str]],
    tmp_path: Path,
    stage: str,
    fault: str,
    finished: int,
) -> None:
    run = tmp_path / "run.duckdb"
    status, log = _run(runner, tmp_path / "oom.log", "run", *SMALL_ARGS, "--out", str(run), fault=fault)
    assert status == 2, log
    error = _one_error_line(log)
    assert error.startswith(
        f"error: M1 {stage} ran out of memory (DefaultCPUAllocator: can't allocate memory"
    )
    for setting in ("sampling.max_rows", "judge.batch_size", "gradient_checkpointing", "dtype"):
        assert setting in error
    assert f"presrm run --resume {run}" in error
    # The stages before it are there, exactly; the stopped one is not finished.
    done = stage_rows(run)
    ref = stage_rows(reference[0])
    assert list(done) == list(ref)[:finished] and all(done[s] == ref[s] for s in done)

    status, log = _run(runner, tmp_path / "resume.log", "run", "--resume", str(run))
    assert status == 0, log
    _assert_same_rows(run, reference[0])


@pytest.mark.slow
def test_a_kill_while_the_checkpoint_is_written_leaves_no_checkpoint_to_load(
    runner: ForkRunner, reference: tuple[Path, Counter[str]], tmp_path: Path
) -> None:
    run = tmp_path / "run.duckdb"
    status, log = _run(
        runner, tmp_path / "killed.log", "run", *SMALL_ARGS, "--out", str(run), fault="kill:checkpoint:1"
    )
    assert status == -signal.SIGKILL, log
    m1 = run.with_suffix(".ckpt") / "M1"
    partial = m1.with_name("M1.partial")
    assert not m1.exists() and partial.is_dir() and not (partial / MANIFEST).exists()
    assert set(stage_rows(run)) == {(0, "eval"), (1, "search")}

    status, log = _run(runner, tmp_path / "resume.log", "run", "--resume", str(run))
    assert status == 0, log
    assert is_complete(m1)
    _assert_same_rows(run, reference[0])


@pytest.mark.slow
def test_a_torn_checkpoint_of_a_finished_stage_is_detected_and_its_stage_redone(
    runner: ForkRunner, reference: tuple[Path, Counter[str]], tmp_path: Path
) -> None:
    """The run file says M1 trained, but M1's weights are cut short (what a machine that crashed
    before its page cache reached the disk leaves): --resume retrains M1 instead of loading it."""
    run = tmp_path / "run.duckdb"
    shutil.copy(reference[0], run)
    shutil.copytree(reference[0].with_suffix(".ckpt"), run.with_suffix(".ckpt"))
    m1 = run.with_suffix(".ckpt") / "M1"
    weights = max((p for p in m1.iterdir() if p.suffix == ".safetensors"), key=lambda p: p.stat().st_size)
    os.truncate(weights, weights.stat().st_size // 2)
    assert not is_complete(m1)
    con = duckdb.connect(str(run))
    con.execute("DELETE FROM stages WHERE iteration = 1 AND stage = 'eval'")  # the resume needs M1
    con.close()

    status, log = _run(runner, tmp_path / "resume.log", "run", "--resume", str(run))
    assert status == 0, log
    assert f"M1's checkpoint {m1} is incomplete; redoing M1 train" in " ".join(log.split())
    assert is_complete(m1)
    _assert_same_rows(run, reference[0])


def _kill_points(reached: Counter[str]) -> list[tuple[str, int]]:
    rng = random.Random(SEED)
    points = []
    for kind, quota in SWEEP.items():
        hits = range(1, reached[kind] + 1)
        points += [(kind, n) for n in sorted(rng.sample(hits, min(quota, len(hits))))]
    return points


@pytest.mark.slow
def test_killed_anywhere_and_resumed_the_rows_equal_an_uninterrupted_run(
    runner: ForkRunner, reference: tuple[Path, Counter[str]], tmp_path: Path
) -> None:
    ref, reached = reference
    assert set(SWEEP) == set(POINTS) and all(reached[kind] for kind in SWEEP), reached
    points = _kill_points(reached)
    assert len(points) >= 20
    expected = all_rows(ref)
    differences = []
    t0 = time.perf_counter()
    for kind, n in points:
        run = tmp_path / f"{kind}-{n}" / "run.duckdb"
        run.parent.mkdir()
        status, log = _run(
            runner, run.parent / "killed.log", "run", *SMALL_ARGS, "--out", str(run), fault=f"kill:{kind}:{n}"
        )
        assert status == -signal.SIGKILL, (kind, n, log)
        status, log = _run(runner, run.parent / "resume.log", "run", "--resume", str(run))
        assert status == 0, (kind, n, log)
        got = all_rows(run)
        differences += [(kind, n, table) for table in expected if got.get(table) != expected[table]]
        assert_ids_dense(run)
        assert not list(run.with_suffix(".ckpt").glob("*.partial"))
    print(
        f"{len(points)} kill points over {len(SWEEP)} kinds, {len(differences)} differences"
        f" ({time.perf_counter() - t0:.0f} s)"
    )
    assert differences == []
