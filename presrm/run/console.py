"""The run's terminal output: one console on stderr, progress, stage summary lines.

On a terminal a stage's progress is a live bar; anywhere else (a log file, a pipe) it is
plain lines at a modest rate (presrm.run.plain_progress). Other libraries' bars and warnings
are silenced by the command line (presrm.run.quiet), not here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from presrm.run.plain_progress import PlainProgress, every_from_env
from presrm.run.plan import Stage

# soft_wrap: a summary line stays one line in a log file instead of wrapping at 80 columns.
console = Console(stderr=True, soft_wrap=True)
_plain: PlainProgress | None = None


def _plain_progress() -> PlainProgress:
    global _plain
    if _plain is None:
        _plain = PlainProgress(lambda line: console.print(Text(line)), every_from_env())
    return _plain


@contextlib.contextmanager
def stage_progress(stage: Stage) -> Iterator[None]:
    """Around a whole stage: off a terminal, a heartbeat line while nothing else is written."""
    if console.is_terminal:
        yield
        return
    with _plain_progress().stage(f"M{stage.iteration} {stage.name}"):
        yield


@contextlib.contextmanager
def progress_bar(label: str, total: int | None, unit: str = "problems") -> Iterator[Callable[[int], None]]:
    """``advance(n)`` moves the count by n; a total of None counts without an end (training updates)."""
    if not console.is_terminal:
        with _plain_progress().count(label, total, unit) as advance:
            yield advance
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as progress:
        task_id = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task_id, n)


def search_progress(
    iteration: int, phase: str, total: int
) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    """The count of problems searched; the training problems' phase is the search stage."""
    return progress_bar(f"M{iteration} {'search' if phase == 'train' else phase}", total)


@contextlib.contextmanager
def update_progress(
    iteration: int, trainer: str, total: int | None = None
) -> Iterator[Callable[[int], None]]:
    """A training count: ``seen(step)`` with the trainer's update number, which may skip; ``total``:
    the number of updates where the trainer knows it (a done/total line with the time left)."""
    with progress_bar(f"M{iteration} {trainer}", total, "updates") as advance:
        last = 0

        def seen(step: int) -> None:
            nonlocal last
            if step > last:
                advance(step - last)
                last = step

        yield seen


def summary_line(stage: Stage, wall: float, detail: dict[str, Any]) -> str:
    parts = [
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items() if v is not None
    ]
    return f"[bold]M{stage.iteration} {stage.name}[/bold] done in {wall:.1f}s  " + "  ".join(parts)
