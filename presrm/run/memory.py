"""Running out of memory mid-stage: one line that names the stage and the settings that help.

A stage's ``stages`` row commits last, so a stage stopped by an out-of-memory error is
unfinished in the run file and ``--resume`` redoes it. The stored config is what a resume
uses, so the lower-memory settings apply to a new run; a resume needs more free memory.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from pathlib import Path

from presrm.errors import PresrmError

# What each allocator says when it refuses: the CPU allocator raises a plain RuntimeError,
# CUDA / MPS a torch.OutOfMemoryError (a RuntimeError too).
OOM_MARKERS = ("can't allocate memory", "out of memory", "not enough memory")
SETTINGS = (
    "a lower sampling.max_rows or judge.batch_size, gradient_checkpointing = true"
    " (warmup / train.dpo / train.ppo) or a smaller dtype"
)


class OutOfMemory(PresrmError):
    """A stage needed more memory than the machine had."""


def is_out_of_memory(err: BaseException) -> bool:
    if isinstance(err, MemoryError):
        return True
    return isinstance(err, RuntimeError) and any(m in str(err) for m in OOM_MARKERS)


def _reason(err: BaseException) -> str:
    line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    line = re.sub(r"^\[enforce fail at [^\]]*\]\s*err == 0\.\s*", "", line)  # torch's C++ check prefix
    return line[:200]


@contextlib.contextmanager
def stage_memory(stage: str, run: Path) -> Iterator[None]:
    """Turn an out-of-memory error raised inside ``stage`` (e.g. "M1 search") into one line."""
    try:
        yield
    except (MemoryError, RuntimeError) as err:
        if not is_out_of_memory(err):
            raise
        raise OutOfMemory(
            f"{stage} ran out of memory ({_reason(err)}); with more free memory, presrm run --resume {run}"
            f" redoes this stage; a new run needs less with {SETTINGS}"
        ) from None
