"""The run's terminal output: one console on stderr, progress bars, stage summary lines."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers.utils import logging as hf_logging

from presrm.run.plan import Stage

console = Console(stderr=True)


# The loop draws its own progress bars; transformers' per-load/per-save bars would interleave.
hf_logging.disable_progress_bar()


hf_logging.set_verbosity_error()


@contextlib.contextmanager
def progress_bar(label: str, total: int) -> Iterator[Callable[[int], None]]:
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task_id = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task_id, n)


def summary_line(stage: Stage, wall: float, detail: dict[str, Any]) -> str:
    parts = [
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items() if v is not None
    ]
    return f"[bold]M{stage.iteration} {stage.name}[/bold] done in {wall:.1f}s  " + "  ".join(parts)
