"""Progress as plain lines, for output that is not a terminal (a log file, nohup, a cluster job).

A live bar cannot redraw in a file, so a long stage would show nothing until its summary line.
Here a stage writes a line every ``every`` seconds (a heartbeat thread, so a stage whose count
moves slowly or not at all still shows it is alive) and sooner when another 10 % of its count
is done, but never more than one line per ``every / 6`` seconds. A line holds done/total and an
estimate of the time left.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from presrm.errors import PresrmError

EVERY_ENV = "PRESRM_PROGRESS_EVERY"
DEFAULT_EVERY_S = 30.0


def every_from_env() -> float:
    """Seconds between plain progress lines: ``PRESRM_PROGRESS_EVERY`` or 30."""
    raw = os.environ.get(EVERY_ENV, "").strip()
    if not raw:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise PresrmError(f"environment variable {EVERY_ENV}={raw!r} is not a positive number of seconds")
    return value


def duration(seconds: float) -> str:
    """12s, 4m05s, 2h10m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class _Count:
    label: str
    total: int | None
    unit: str
    started: float
    done: int = 0
    tenths: int = field(default=0)  # tenths of the total already reported


class PlainProgress:
    """One stage at a time, with at most one count (problems searched, updates trained) in it."""

    def __init__(
        self, write: Callable[[str], None], every: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._write = write
        self.every = every
        self._clock = clock
        self._lock = threading.Lock()
        self._stage: str | None = None
        self._stage_started = 0.0
        self._count: _Count | None = None
        self._last = clock()

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator[None]:
        with self._lock:
            self._stage, self._stage_started = label, self._clock()
            self._last = self._stage_started
        stop = threading.Event()
        ticker = threading.Thread(target=self._tick, args=(stop,), name="presrm-progress", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            stop.set()
            ticker.join()
            with self._lock:
                self._stage = None

    @contextlib.contextmanager
    def count(self, label: str, total: int | None, unit: str) -> Iterator[Callable[[int], None]]:
        with self._lock:
            self._count = _Count(label, total, unit, self._clock())
        try:
            yield self._advance
        finally:
            with self._lock:
                self._count = None

    def _tick(self, stop: threading.Event) -> None:
        while not stop.wait(self.every / 4):
            with self._lock:
                if self._clock() - self._last >= self.every:
                    self._emit()

    def _advance(self, n: int) -> None:
        with self._lock:
            c = self._count
            if c is None:
                return
            c.done += n
            if not c.total or c.done >= c.total:
                return  # the stage's summary line follows the last one
            tenths = c.done * 10 // c.total
            if tenths > c.tenths and self._clock() - self._last >= self.every / 6:
                c.tenths = tenths
                self._emit()

    def _emit(self) -> None:
        self._last = now = self._clock()
        c = self._count
        if c is None:
            if self._stage is not None:
                self._write(f"{self._stage}  working, {duration(now - self._stage_started)} elapsed")
            return
        elapsed = now - c.started
        if not c.total:
            self._write(f"{c.label}  {c.unit}: {c.done}  {duration(elapsed)} elapsed")
            return
        left = (
            f"about {duration(elapsed / c.done * (c.total - c.done))} left" if c.done else "time left unknown"
        )
        percent = 100 * c.done // c.total
        self._write(
            f"{c.label}  {c.done}/{c.total} {c.unit} ({percent} %)  {duration(elapsed)} elapsed, {left}"
        )
