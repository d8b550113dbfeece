"""One writer per run: the run lock refuses a second writer, names its holder, dies with it,
and leaves the readers (and the inspector's flag write) alone."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from run_rows import BUILTIN

from presrm.config import load_config
from presrm.errors import RunBusyError
from presrm.run.lock import RunLock, lock_path
from presrm.store.flags import add_flag, list_flags
from presrm.store.reader import query_rows
from presrm.store.writer import RunStore

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
CONFIG = ["model=tiny", "iterations=0", "eval_problems=1", "max_steps=1", "warmup.enabled=false"]


def presrm(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "presrm.cli", *args],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def one_line_error(result: tuple[int, str, str]) -> str:
    code, _, err = result
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err and len(lines) == 1, err
    return lines[0]


@pytest.fixture
def run_file(tmp_path: Path) -> Path:
    """A real run file with one tree of two steps (something to flag)."""
    path = tmp_path / "run.duckdb"
    store = RunStore.create(path, load_config(None, [*CONFIG, f"out={str(path)!r}"]))
    store.append_rows(
        "nodes",
        [{"node_id": i, "tree_id": 0, "parent_id": i - 1 if i else None, "depth": i + 1} for i in range(2)],
    )
    store.flush()
    return path


@pytest.mark.slow
def test_a_second_writer_is_refused_by_name_and_readers_go_on(run_file: Path, tmp_path: Path) -> None:
    lock = RunLock.acquire(run_file)  # this test process is the run's writer now
    holder = f"PID {os.getpid()} on host {socket.gethostname()}"
    before = run_file.read_bytes()
    resume = presrm("run", "--resume", str(run_file))
    again = presrm("run", BUILTIN, *[a for s in CONFIG for a in ("--set", s)], "--out", str(run_file))
    reader = presrm("sql", str(run_file), "SELECT count(*) FROM nodes", "-f", "csv")
    export = presrm("export", str(run_file), "--to", str(tmp_path / "parquet"))
    recompute = presrm("eval", str(run_file), "--recompute")  # it rewrites eval_metrics: a writer
    for refused in (resume, again, recompute):
        line = one_line_error(finished(refused))
        assert line.startswith(f"error: {run_file} is being written by another presrm process ({holder}")
    assert run_file.read_bytes() == before, "a refused writer changed the run file"
    code, out, err = finished(reader)
    assert code == 0 and out.splitlines()[1] == "2", err
    code, out, err = finished(export)
    assert code == 0 and (tmp_path / "parquet" / "nodes.parquet").is_file(), err
    # The inspector's flag write is a short transaction of its own, never the run's lock.
    add_flag(run_file, "node", 1, note="while the run is live")
    assert [f.target_id for f in list_flags(run_file)] == [1]
    lock.release()
    assert query_rows(run_file, "SELECT count(*) FROM stages") == [(0,)]


def test_sigkill_of_the_holder_leaves_no_stale_lock(run_file: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom presrm.run.lock import RunLock\n"
            "RunLock.acquire(sys.argv[1]); print('locked', flush=True); time.sleep(300)",
            str(run_file),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunBusyError, match=re.escape(f"PID {holder.pid} on host {socket.gethostname()}")):
            RunLock.acquire(run_file)
        holder.send_signal(signal.SIGKILL)
        assert holder.wait(timeout=60) == -signal.SIGKILL
    finally:
        holder.kill()
    lock = RunLock.acquire(run_file)  # the kernel dropped the dead holder's lock
    assert lock_path(run_file).read_text().startswith(f"PID {os.getpid()} on host ")
    with pytest.raises(RunBusyError):
        RunLock.acquire(run_file)  # held again, by this process: a second open file is refused
    lock.release()
    RunLock.acquire(run_file).release()


def test_the_lock_is_beside_the_run_and_outlives_no_one(tmp_path: Path) -> None:
    run = tmp_path / "new" / "run.duckdb"
    lock = RunLock.acquire(run)  # before the run file exists: `run --out` locks, then creates
    assert lock_path(run) == tmp_path / "new" / "run.duckdb.lock" and lock_path(run).is_file()
    assert not run.exists()
    lock.release()
    lock.release()  # twice is harmless
    RunLock.acquire(run).release()
