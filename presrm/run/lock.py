"""One writer per run: the process that runs or resumes a run holds an OS lock on it.

The lock is ``flock(2)`` on ``RUN.duckdb.lock`` beside the run file. A flock belongs to the
open file, so the kernel drops it when the holder dies, however it dies: a run killed with
SIGKILL leaves the file behind (harmless) but never a stale lock. The holder
writes its PID and host into the file so that a refused process can say who holds it.
Readers (``sql``, ``inspect``, ``report``, ``export``) never take it; they only ever open the
run file read-only for one query at a time (presrm/store/db.py).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING

from presrm.errors import RunBusyError, StoreError

if TYPE_CHECKING:  # the lock itself needs no torch: a refused process stops before importing it
    from presrm.run.distributed import Dist


def lock_path(run: Path) -> Path:
    """RUN.duckdb → RUN.duckdb.lock (beside it, like DuckDB's own RUN.duckdb.wal)."""
    return run.with_name(run.name + ".lock")


class RunLock:
    """An exclusive lock on one run, released by :meth:`release` or by the process's death."""

    def __init__(self, run: Path, fd: int) -> None:
        self.run = run
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, run: str | Path) -> RunLock:
        """Take the run's lock, or raise RunBusyError naming the process that holds it."""
        run = Path(run)
        path = lock_path(run)
        try:
            run.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the output directory {run.parent}: {err.strerror}") from None
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        except OSError as err:
            raise StoreError(
                f"cannot write {run}: cannot create its lock file {path} ({err.strerror})"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise RunBusyError(
                f"{run} is being written by another presrm process ({holder}); a run has one writer:"
                " wait for that process to end or stop it (presrm sql / inspect / report work meanwhile)"
            ) from None
        since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()} on host {socket.gethostname()}, since {since}\n".encode(), 0)
        return cls(run, fd)

    def release(self) -> None:
        """Drop the lock (closing the file is what releases a flock). The file stays: removing
        it would let a process that opened it just before lock a file no one else can see."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _holder(fd: int) -> str:
    """What the holder wrote about itself; it writes right after locking, so wait briefly for it."""
    deadline = time.monotonic() + 1.0
    while True:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
        if text or time.monotonic() >= deadline:
            return text or "PID unknown: it has not written the lock file yet"
        time.sleep(0.02)


def hold_run_lock(run: Path, dist: Dist) -> RunLock | None:
    """Rank 0 takes the run's lock (the other ranks hold ``None``); when it cannot, every rank
    raises the same error. A collective: all ranks of a data-parallel run call it together."""
    return dist.on_main(lambda: RunLock.acquire(run))
