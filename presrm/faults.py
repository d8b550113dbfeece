"""Fault injection at named points of a run, switched on by an environment variable.

The reliability tests kill a real run at exact places instead of racing a timer:

    PRESRM_FAULT=kill:search:3   SIGKILL this process the 3rd time it reaches point "search"
    PRESRM_FAULT=oom:train:1     make an allocation the allocator refuses (a real out-of-memory error)
    PRESRM_FAULT_LOG=FILE        append "point count" for every point reached (what a sweep picks from)

Points: ``search`` / ``eval`` (a batch of trees stored), ``judge`` (a judge call), ``train``
(an optimizer update logged), ``checkpoint`` (a checkpoint half written), ``flush`` (rows
inserted, transaction not yet committed), ``commit`` (committed, not yet checkpointed into
the file), ``stage`` (a stage committed). Without the variables a point costs two
environment lookups.
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from presrm.errors import PresrmError

ENV = "PRESRM_FAULT"
LOG_ENV = "PRESRM_FAULT_LOG"
ACTIONS = ("kill", "oom")
POINTS = ("search", "eval", "judge", "train", "checkpoint", "flush", "commit", "stage")

P = ParamSpec("P")
R = TypeVar("R")

_hits: Counter[str] = Counter()


def point(name: str) -> None:
    """This process reached point ``name``: log it, and fail here if PRESRM_FAULT says so."""
    spec, log = os.environ.get(ENV), os.environ.get(LOG_ENV)
    if not spec and not log:
        return
    _hits[name] += 1
    if log:
        with open(log, "a") as f:
            f.write(f"{name} {_hits[name]}\n")
    if spec:
        action, where, n = parse(spec)
        if where == name and _hits[name] == n:
            _fail(action)


def parse(spec: str) -> tuple[str, str, int]:
    """``action:point:n`` → (action, point, n); a malformed spec is a one-line error."""
    parts = spec.split(":")
    if len(parts) == 3 and parts[0] in ACTIONS and parts[1] in POINTS and parts[2].isdigit():
        return parts[0], parts[1], int(parts[2])
    raise PresrmError(
        f"{ENV}={spec!r}: expected ACTION:POINT:N with ACTION in {', '.join(ACTIONS)}"
        f" and POINT in {', '.join(POINTS)}"
    )


def _fail(action: str) -> None:
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    import torch

    # 4 EiB: more than any machine has, so the allocator itself raises its own error.
    torch.empty(1 << 62, dtype=torch.uint8)


def watch_judge(judge: object) -> None:
    """Make every call of ``judge``'s pairwise / pointwise verdicts a ``judge`` point.

    The methods are wrapped on the instance (only while fault injection is on), so the judge
    keeps its class: the search tells judges apart by it.
    """
    if judge is None or (not os.environ.get(ENV) and not os.environ.get(LOG_ENV)):
        return
    verdicts = getattr(judge, "verdicts", judge)  # a judge mode asks its verdict source
    for name in ("pairwise", "pointwise"):
        method = getattr(verdicts, name, None)
        if method is not None:
            setattr(verdicts, name, _judged(method))


def _judged(method: Callable[P, R]) -> Callable[P, R]:
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        point("judge")
        return method(*args, **kwargs)

    return call
