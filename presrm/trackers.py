"""Experiment trackers (``report_to``): a run's training curves, eval metrics and judge statistics
in TensorBoard, Weights & Biases or Trackio, besides its DuckDB file.

Every tracker run is named ``<run id>-M<k>-<stage>`` (TensorBoard: the folder
``<run id>/M<k>-<stage>``): one per trainer of an iteration (warmup, step-dpo, ppo, rft) and one
for its search and eval, whose scalars are logged at step k so that iterations line up.
Nothing reaches a network: TensorBoard and wandb write under ``RUN.trackers/`` next to the run
file (wandb in offline mode unless ``WANDB_MODE`` says otherwise; ``wandb sync`` uploads later),
Trackio into its local store (``TRACKIO_DIR``, default ``~/.cache/huggingface/trackio``).

A TRL trainer reports through TRL's own ``report_to``: :func:`trl_report_args` hands the open
stage's arguments to ``presrm.train.trl_support.common_args``, and the stage then leaves that
trainer's metrics to TRL. The other trainers (PPO, rft) have their metrics forwarded here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from presrm.errors import PresrmError

TRACKERS = ("tensorboard", "wandb", "trackio")
PROJECT = "presrm"
_BOARD_ENV = "TENSORBOARD_LOGGING_DIR"
# The module that must import for each tracker (tensorboard is what torch's SummaryWriter needs).
_MODULES = {"tensorboard": "tensorboard", "wandb": "wandb", "trackio": "trackio"}


class TrackerError(PresrmError):
    """A tracker named in report_to is not installed."""


def chosen(report_to: Sequence[str]) -> list[str]:
    """The trackers of ``report_to`` in a fixed order ("none" and repeats dropped)."""
    return [name for name in TRACKERS if name in report_to]


def check_trackers(report_to: Sequence[str]) -> None:
    """One line naming the extra to install when a chosen tracker's package is missing."""
    for name in chosen(report_to):
        if not _importable(_MODULES[name]):
            raise TrackerError(f"report_to = {name!r} needs the {name} package: pip install 'presrm[{name}]'")


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ValueError:  # a module entry of None in sys.modules: importing it is refused
        return False


@dataclass
class TrlReporting:
    """What a TRL trainer started inside a tracked stage passes as its ``report_to`` arguments."""

    report_to: list[str]
    run_name: str
    used: bool = False  # a trainer took them: TRL reports this stage's metrics itself


_TRL: ContextVar[TrlReporting | None] = ContextVar("presrm_trl_reporting", default=None)


def trl_report_args() -> dict[str, Any]:
    """TrainingArguments' reporting fields for a trainer built now ("none" outside a tracked stage)."""
    current = _TRL.get()
    if current is None or not current.report_to:
        return {"report_to": "none"}
    current.used = True
    return {"report_to": list(current.report_to), "run_name": current.run_name, "project": PROJECT}


class _Sink(Protocol):
    def log(self, step: int, metrics: Mapping[str, float]) -> None: ...
    def close(self) -> None: ...


class _TensorBoard:
    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class _Wandb:
    def __init__(self, name: str, group: str, directory: Path) -> None:
        import wandb

        directory.mkdir(parents=True, exist_ok=True)
        mode: Any = os.environ.get("WANDB_MODE", "offline")  # offline unless the user says otherwise
        self.run = wandb.init(
            project=PROJECT, name=name, group=group, dir=str(directory), mode=mode, reinit="finish_previous"
        )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=step)

    def close(self) -> None:
        self.run.finish()


class _Trackio:
    def __init__(self, name: str, group: str) -> None:
        import trackio

        self.trackio = trackio
        # resume: a resumed stage logs into the run of the same name; no CPU sampling thread.
        trackio.init(
            project=PROJECT, name=name, group=group, resume="allow", auto_log_cpu=False, auto_log_gpu=False
        )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        self.trackio.log(dict(metrics), step=step)

    def close(self) -> None:
        self.trackio.finish()


@dataclass
class StageRun:
    """One tracker run: each tracker opened at its first forwarded log line, closed with the stage."""

    tracking: Tracking
    name: str
    trl: TrlReporting
    prefix: str = "train/"  # what TRL's own callbacks put before a trainer's metric names
    sinks: dict[str, _Sink] = field(default_factory=dict)

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Forward one log line, unless a TRL trainer reports this stage itself."""
        if self.trl.used or not metrics:
            return
        for tracker in self.tracking.names:
            if tracker not in self.sinks:
                self.sinks[tracker] = self.tracking.open_sink(tracker, self.name)
        values = {self.prefix + k: float(v) for k, v in metrics.items()}
        for sink in self.sinks.values():
            sink.log(step, values)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()
        self.sinks = {}


class Tracking:
    """The trackers of one run file (``report_to``); with none chosen every call does nothing."""

    def __init__(self, report_to: Sequence[str], run_file: Path, run_id: str) -> None:
        self.names = chosen(report_to)
        check_trackers(self.names)
        self.directory = Path(run_file).with_suffix(".trackers")
        self.run_id = run_id

    @property
    def enabled(self) -> bool:
        return bool(self.names)

    def run_name(self, iteration: int, stage: str) -> str:
        return f"{self.run_id}-M{iteration}-{stage}"

    def _board_dir(self, name: str) -> Path:
        return self.directory / "tensorboard" / self.run_id / name.removeprefix(f"{self.run_id}-")

    def open_sink(self, tracker: str, name: str) -> _Sink:
        if tracker == "tensorboard":
            return _TensorBoard(self._board_dir(name))
        if tracker == "wandb":
            return _Wandb(name, self.run_id, self.directory)
        return _Trackio(name, self.run_id)

    @contextmanager
    def stage(self, iteration: int, stage: str) -> Iterator[StageRun]:
        """The tracker run of one training stage; TRL trainers built inside report to it themselves."""
        name = self.run_name(iteration, stage)
        run = StageRun(self, name, TrlReporting(self.names, name))
        if "wandb" in self.names:
            # TRL's wandb callback logs into the open run; with none open it would start one with
            # the settings wandb read at its first import (online, asking for a login).
            run.sinks["wandb"] = self.open_sink("wandb", name)
        token = _TRL.set(run.trl)
        # TRL's TensorBoard callback takes its folder from the environment only.
        saved = os.environ.get(_BOARD_ENV)
        if "tensorboard" in self.names:
            os.environ[_BOARD_ENV] = str(self._board_dir(name))
        try:
            yield run
        finally:
            _TRL.reset(token)
            if saved is None:
                os.environ.pop(_BOARD_ENV, None)
            else:
                os.environ[_BOARD_ENV] = saved
            run.close()

    def log_once(self, iteration: int, stage: str, metrics: Mapping[str, float]) -> None:
        """Scalars of a search or eval stage, at step ``iteration``, in their own tracker run."""
        if not self.enabled or not metrics:
            return
        run = StageRun(self, self.run_name(iteration, stage), TrlReporting([], ""), prefix="")
        try:
            run.log(iteration, metrics)
        finally:
            run.close()

    def stage_done(self, run_file: Path, iteration: int, stage: str, detail: Mapping[str, Any]) -> None:
        """After a search or eval stage committed: its judge statistics or eval metrics (with their
        95 % intervals), read back from the run file."""
        if not self.enabled:
            return
        if stage == "search":
            from presrm.store.training_rows import search_counts

            self.log_once(iteration, stage, search_statistics(search_counts(run_file, iteration), detail))
        elif stage == "eval":
            from presrm.eval.evaluate import stored_metrics

            metrics = stored_metrics(run_file).get(iteration, {})
            self.log_once(iteration, stage, {f"eval/{k}": v for k, v in metrics.items()})


def search_statistics(counts: Mapping[str, int], detail: Mapping[str, Any]) -> dict[str, float]:
    """The judge statistics of an iteration's training search: counts and the rates they give."""
    out = {f"search/{k}": float(v) for k, v in counts.items()}
    if counts.get("judgments"):
        out["search/unparseable_rate"] = counts["unparseable"] / counts["judgments"]
    if counts.get("pairs"):
        out["search/order_disagreement_rate"] = counts["order_disagreements"] / counts["pairs"]
    if isinstance(detail.get("train_accuracy"), int | float):
        out["search/train_accuracy"] = float(detail["train_accuracy"])
    return out
