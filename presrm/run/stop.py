"""Ctrl-C as a request: the loop stops at its next safe point."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from types import FrameType

from presrm.run.console import console


class StopFlag:
    """SIGINT sets a flag; the loop stops at the next safe point (between batches)."""

    # A launcher (torchrun) forwards the terminal's Ctrl-C to workers that got it already:
    # a repeat this soon after the first is the same Ctrl-C, not a second one.
    REPEAT_S = 1.0

    def __init__(self) -> None:
        self.requested = False
        self._first = 0.0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.requested:
                if time.monotonic() - self._first < self.REPEAT_S:
                    return
                raise KeyboardInterrupt  # a second Ctrl-C stops at once
            self.requested = True
            self._first = time.monotonic()
            console.print("[yellow]stopping at the next safe point (Ctrl-C again to abort now)[/yellow]")

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
