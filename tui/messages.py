"""Messages that thread workers post back to the UI (only message handlers touch widgets)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message
from textual.message_pump import MessagePump
from textual.worker import get_current_worker

from presrm.inspect.calibration import Calibration
from presrm.inspect.changes import DataVersion
from presrm.inspect.flips import FlipPage
from presrm.inspect.problems import TreePage
from presrm.inspect.run_info import RunInfo
from presrm.inspect.summaries import IterationSummary
from presrm.inspect.trees import TreeDetail


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
    missing: bool = False
    """Headline metrics that eval_metrics lacks have not been computed yet."""


@dataclass
class ProblemsLoaded(Message):
    """One page of the problems table."""

    page: TreePage


@dataclass
class CalibrationLoaded(Message):
    """The calibration view's numbers."""

    calibration: Calibration


@dataclass
class ComparisonLoaded(Message):
    """The compare tab's paired problems."""

    page: FlipPage


@dataclass
class PairLoaded(Message):
    """The two trees of one problem, side A's and side B's."""

    a: TreeDetail
    b: TreeDetail


@dataclass
class TreeLoaded(Message):
    """A whole reasoning tree."""

    detail: TreeDetail


@dataclass
class TreeReady(Message):
    """A tree the user asked to open, loaded: the app shows it."""

    detail: TreeDetail
    focus_node: int | None = None


@dataclass
class TreePrefetched(Message):
    """A tree read ahead of an open (the row under a table's cursor), at index ``generation``."""

    detail: TreeDetail
    generation: int


@dataclass
class PrefetchFailed(Message):
    """Reading ahead failed; an open waiting for it loads the tree itself (and reports the error)."""

    tree_id: int


@dataclass
class FlagsChanged(Message):
    """A flag was added or removed (``text`` says what, for a notification)."""

    text: str


def post_current(target: MessagePump, message: Message) -> bool:
    """Post from a thread worker unless a newer worker of its exclusive group replaced it.

    (A cancelled thread worker still runs to its end; its stale result must not
    overwrite the newer one's.)
    """
    if get_current_worker().is_cancelled:
        return False
    return target.post_message(message)
