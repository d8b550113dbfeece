"""Where a resumed run goes on: the finished stages it can build on.

A stage is finished when its ``stages`` row committed. The next stage to run starts from a
model: M0 is built from the config, M<k> (k ≥ 1) is loaded from its checkpoint. When that
checkpoint is not whole (presrm/run/checkpoint_io.py), the training stage that wrote it and
every stage after it are marked unfinished again, so they are redone instead of a torn
checkpoint being loaded.
"""

from __future__ import annotations

from presrm.run.checkpoint_io import is_complete
from presrm.run.console import console
from presrm.run.plan import Stage, checkpoint_dir
from presrm.store.writer import RunStore

TRAINING_STAGES = ("warmup", "train")


def resumable_stages(store: RunStore, stages: list[Stage]) -> set[tuple[int, str]]:
    """The (iteration, stage) pairs a run of ``stages`` skips; rank 0's work (it reads the file)."""
    done = store.finished_stages()
    todo = [s for s in stages if (s.iteration, s.name) not in done]
    if not todo:
        return done
    model = todo[0].iteration if todo[0].name == "eval" else todo[0].iteration - 1
    if model < 1 or is_complete(checkpoint_dir(store, model)):
        return done
    first = next(
        (i for i, s in enumerate(stages) if s.iteration == model and s.name in TRAINING_STAGES), None
    )
    if first is None:  # no stage of ours wrote it: loading it says what is wrong
        return done
    redo = [s for s in stages[first:] if (s.iteration, s.name) in done]
    console.print(
        f"[yellow]M{model}'s checkpoint {checkpoint_dir(store, model)} is incomplete; redoing "
        + ", ".join(f"M{s.iteration} {s.name}" for s in redo)
        + "[/yellow]"
    )
    # The stages' own rows are deleted by the loop when it redoes each of them.
    store.discard([("stages", "iteration = ? AND stage = ?", [s.iteration, s.name]) for s in redo])
    return done - {(s.iteration, s.name) for s in redo}
