"""Levels of a run's task: which level an iteration trains on, and the held-out levels it evaluates.

A curriculum (``curriculum.levels``) starts the iterations on its first level and moves to the
next after an iteration whose self-verified solutions reached ``curriculum.advance_at`` of its
training problems: the share of problems the model solved *and* verified itself, with no label.
The decision is read back from the run file's finished stages, so a resumed run takes exactly the
levels the killed one would have.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from presrm.config import RunConfig
from presrm.store.training_rows import stage_details

LEVEL_MODE_PREFIX = "greedy:"
"""evals.mode of a held-out level other than the run's own task: ``greedy:n_ops=4``."""


def level_options(cfg: RunConfig, level: int | None) -> dict[str, Any]:
    """The task options of ``level`` (None: the run's own task options)."""
    if level is None:
        return dict(cfg.task_options)
    return {**cfg.task_options, cfg.curriculum.option: level}


def level_mode(cfg: RunConfig, level: int) -> str:
    """The evals.mode of a held-out level's greedy evaluation."""
    return f"{LEVEL_MODE_PREFIX}{cfg.curriculum.option}={level}"


def training_level(run_file: str | Path, cfg: RunConfig, iteration: int) -> int | None:
    """The level iteration ``iteration`` trains on (None without a curriculum), from the verified
    shares of the earlier iterations' finished stages."""
    if not cfg.curriculum.levels:
        return None
    details = stage_details(run_file, ("search", "train"), before=iteration)
    shares = []
    for it in sorted(details):
        problems = details[it].get("search", {}).get("problems", 0)
        shares.append(details[it].get("train", {}).get("verified", 0) / problems if problems else 0.0)
    return pick_level(cfg.curriculum.levels, cfg.curriculum.advance_at, shares)


def pick_level(levels: list[int], advance_at: float, shares: list[float]) -> int:
    """The first level, moved on by one after each iteration whose verified share (in order)
    reached ``advance_at``; the last level is kept once reached."""
    index = 0
    for share in shares:
        if share >= advance_at and index + 1 < len(levels):
            index += 1
    return levels[index]
