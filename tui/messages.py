"""Messages that thread workers post back to the UI (only message handlers touch widgets)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from presrm.store.queries import Calibration, DataVersion, IterationSummary, RunInfo, TreeDetail, TreePage


@dataclass
class IndexUpdated(Message):
    """The run's tree index was (re)loaded: widgets showing run data reload."""

    version: DataVersion


@dataclass
class LoadFailed(Message):
    """A worker could not read the run; ``message`` is one line for the user."""

    message: str


@dataclass
class OverviewLoaded(Message):
    """Run row and per-iteration summaries for the overview."""

    info: RunInfo
    iterations: list[IterationSummary]
    complete: bool
    """False while the tree index is still loading (tree-derived metrics missing)."""


@dataclass
class ProblemsLoaded(Message):
    """One page of the problems table."""

    page: TreePage


@dataclass
class CalibrationLoaded(Message):
    """The calibration view's numbers."""

    calibration: Calibration


@dataclass
class TreeLoaded(Message):
    """A whole reasoning tree."""

    detail: TreeDetail


@dataclass
class FlagsChanged(Message):
    """A flag was added or removed (``text`` says what, for a notification)."""

    text: str
