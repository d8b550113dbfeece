"""The stages of a run, in order, and where each model's checkpoint lives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from presrm.config import RunConfig
from presrm.store.writer import RunStore


@dataclass(frozen=True)
class Stage:
    iteration: int
    name: str


def plan(cfg: RunConfig) -> list[Stage]:
    """Every stage of a run, in order."""
    stages = [Stage(0, "eval")]
    first = 1
    if cfg.warmup.enabled:
        stages += [Stage(1, "warmup"), Stage(1, "eval")]
        first = 2
    for k in range(first, first + cfg.iterations):
        stages += [Stage(k, "search"), Stage(k, "train"), Stage(k, "eval")]
    return stages


def checkpoint_dir(store: RunStore, iteration: int) -> Path:
    """Checkpoints live next to the run file: RUN.duckdb → RUN.ckpt/M<k>/."""
    return store.path.with_suffix(".ckpt") / f"M{iteration}"
