"""Real processes: Ctrl-C stops at a safe point and resumes; a reader open during a whole run."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from run_rows import BUILTIN, SMALL_ARGS, all_rows, assert_ids_dense, rows, stage_rows

from presrm.store.reader import query_rows

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
ARGS = [
    BUILTIN,
    "--set",
    "model=tiny",
    "--set",
    "problems=6",
    "--set",
    "eval_problems=3",
    "--set",
    "width=2",
    "--set",
    "max_steps=3",
    "--set",
    "iterations=1",
    "--set",
    "warmup.enabled=false",
    "--set",
    "warmup.eft_test_examples=0",
    "--set",
    "sampling.max_step_tokens=6",
    "--set",
    "batch_problems=1",
    "--set",
    "judge.verdict=probs",
    "--set",
    "judge.check=false",
    "--set",
    "eval_search=false",
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
    proc = subprocess.Popen(
        _cli("run", *ARGS, "--out", str(run)),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
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
    proc = subprocess.Popen(
        _cli("run", *ARGS, "--out", str(run)),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: list[int] = []  # this test process is the reader: it polls the file the whole time
    cli_answers = 0
    while proc.poll() is None:
        n = _count(run, "SELECT count(*) FROM nodes") if run.exists() else None
        if n is not None:
            seen.append(n)
            if cli_answers == 0:  # and `presrm sql`, as a user would run it, answers mid-run
                result = subprocess.run(
                    _cli("sql", str(run), "SELECT count(*) FROM nodes", "-f", "csv"),
                    env=ENV,
                    capture_output=True,
                    text=True,
                )
                cli_answers += result.returncode == 0
        time.sleep(0.05)
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    final = query_rows(run, "SELECT count(*) FROM nodes")[0][0]
    assert seen, "the reader never got an answer while the run was writing"
    assert seen == sorted(seen), "the reader sees progress, never a rollback"
    assert len(set(seen)) >= 2 and seen[-1] <= final
    assert cli_answers == 1


# ---- SIGKILL while training; a file that cannot grow (disk full) --------------------------------------
# 400 epochs: a train stage of ~3 s, so the kill lands inside it even on a loaded machine
PPO_ARGS = [*SMALL_ARGS, "--set", "algo=ppo", "--set", "train.ppo_epochs=400"]


def _background_run(path: Path, args: list[str]) -> tuple[subprocess.Popen, Callable[[], Path]]:
    proc = subprocess.Popen(
        _cli("run", *args, "--out", str(path)),
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )

    def finished() -> Path:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        return path

    return proc, finished


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Path]]:
    """An uninterrupted run of SMALL_ARGS, started at once in the background; call to wait for it."""
    proc, finished = _background_run(tmp_path_factory.mktemp("reference") / "reference.duckdb", SMALL_ARGS)
    yield finished
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def ppo_reference_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[], Path]]:
    """The same for PPO_ARGS."""
    proc, finished = _background_run(tmp_path_factory.mktemp("reference-ppo") / "reference.duckdb", PPO_ARGS)
    yield finished
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


def _wait_for_training(proc: subprocess.Popen, scratch: Path) -> None:
    """Return once the run is inside step-DPO training: train_step_dpo creates its scratch directory
    (in TMPDIR) after the search stage committed, and removes it when trainer.train() returns."""
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline and not any(scratch.glob("presrm-dpo-*")):
        time.sleep(0.01)
    assert proc.poll() is None, "the run ended before its training started"


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["step-dpo", "ppo"])
def test_sigkill_during_training_then_resume_gives_the_same_rows(
    tmp_path: Path, algo: str, request: pytest.FixtureRequest
) -> None:
    reference_run = request.getfixturevalue("reference_run" if algo == "step-dpo" else "ppo_reference_run")
    killed, scratch = tmp_path / "killed.duckdb", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        _cli("run", *(SMALL_ARGS if algo == "step-dpo" else PPO_ARGS), "--out", str(killed)),
        env={**ENV, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if algo == "step-dpo":
        _wait_for_training(proc, scratch)
    else:  # the PPO trainer leaves no scratch directory: its stage announces itself, then trains
        assert proc.stderr is not None
        for line in proc.stderr:
            if line.startswith("M1 ppo: training on"):
                break
        else:
            pytest.fail(f"the run ended before its PPO training started (exit {proc.wait()})")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert set(stage_rows(killed)) == {(0, "eval"), (1, "search")}, (
        "the kill must land inside the train stage"
    )
    assert rows(killed, "train_steps") == []

    done = subprocess.run(_cli("run", "--resume", str(killed)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    got, reference = all_rows(killed), all_rows(reference_run())
    assert [r[:2] for r in got["stages"]] == [(0, "eval"), (1, "eval"), (1, "search"), (1, "train")]
    assert got["train_steps"], "the redone train stage logged its updates"
    assert got == reference
    assert_ids_dense(killed)


def _ignore_sigxfsz() -> None:
    # A write past RLIMIT_FSIZE then fails with EFBIG instead of killing the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.slow
@pytest.mark.parametrize("fails_in", ["search", "train"])
def test_file_too_large_is_a_one_line_error_and_resume_completes(
    tmp_path: Path, reference_run: Callable[[], Path], fails_in: str
) -> None:
    """Disk full, simulated by lowering the running process's RLIMIT_FSIZE to 1 byte mid-run.

    search: right after the eval stage committed, so the search stage's flush into the run file's
    write-ahead log fails. train: while step-DPO trains, so writing the checkpoint M1 fails.
    """
    run, scratch = tmp_path / "run.duckdb", tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen(
        _cli("run", *SMALL_ARGS, "--out", str(run)),
        env={**ENV, "TMPDIR": str(scratch)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigxfsz,
    )
    assert proc.stderr is not None
    seen = []
    if fails_in == "search":
        for line in proc.stderr:  # printed once the stage committed
            seen.append(line)
            if line.startswith("M0 eval done"):
                break
    else:
        _wait_for_training(proc, scratch)
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
    err = "".join(seen) + proc.stderr.read()
    assert proc.wait() == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and err.rstrip().endswith(errors[0]), err
    failed_file = run.with_suffix(".ckpt") / "M1" if fails_in == "train" else run
    assert errors[0].startswith(
        f"error: cannot write the checkpoint {failed_file}: File too large"
        if fails_in == "train"
        else f"error: cannot write {failed_file}: "
    ), errors[0]
    assert "File too large" in errors[0]

    # The file opens read-only, and every stage that had finished is there, exactly.
    finished = stage_rows(run)
    assert set(finished) == ({(0, "eval")} if fails_in == "search" else {(0, "eval"), (1, "search")})
    reference = reference_run()
    assert finished == {stage: rows for stage, rows in stage_rows(reference).items() if stage in finished}

    done = subprocess.run(_cli("run", "--resume", str(run)), env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert all_rows(run) == all_rows(reference)
    assert_ids_dense(run)
