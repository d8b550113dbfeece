"""Starting a run file, or resuming one, in every process of a (possibly launched) run."""

from __future__ import annotations

from pathlib import Path

from presrm.config import RunConfig
from presrm.errors import ConfigError, Interrupted
from presrm.model.loading import load_policy
from presrm.run.distributed import setup
from presrm.run.lock import hold_run_lock
from presrm.run.loop import Loop
from presrm.run.prepare import prepare_policy
from presrm.store.writer import ReplicaStore, RunStore, read_identity
from presrm.tasks import load_task
from presrm.tasks.writable import check_writable
from presrm.trackers import check_trackers
from presrm.train.default_recipe import ensure_model
from presrm.train.eft_rollouts import check_eft_source


def start_run(cfg: RunConfig) -> Path:
    """Create the run file for ``cfg`` and run every stage (in every process of a launched run)."""
    dist = setup(cfg.device)
    # Fail on a bad task or model spec before creating anything on disk.
    task = load_task(cfg.task, cfg.task_options)
    if cfg.algo == "step-dpo" and cfg.train.dpo.pairs == "checker" and not task.has_step_checker:
        raise ConfigError(
            f'train.dpo.pairs = "checker" needs a task with a step checker; {cfg.task!r} has none'
        )
    check_eft_source(cfg, task)
    check_trackers(cfg.report_to)  # a missing tracker package: one line before the run file exists
    with dist.main_first():  # the default model is built once into a cache
        ensure_model(cfg.model)
        policy = load_policy(cfg.model, device=dist.device(cfg.device), dtype=cfg.dtype, seed=cfg.seed)
    check_writable(task, policy.tokenizer, cfg.model)
    # Locked before the file exists: of two `run --out X` started together, one creates X.
    lock = hold_run_lock(Path(cfg.out), dist)
    try:
        created = dist.on_main(lambda: RunStore.create(cfg.out, cfg))  # refused: on every rank
        run_id = dist.from_main(lambda: created.run_id if created is not None else "")
        store = created if created is not None else ReplicaStore(cfg.out, run_id, cfg)
        loop = Loop(store, dist=dist)
        loop.policy, loop.model_iteration = prepare_policy(policy, cfg), 0
        return _run(loop)
    finally:
        if lock is not None:
            lock.release()


def resume_run(path: Path) -> Path:
    """Continue a run file from its last finished stage (holding its lock: one writer per run)."""
    # Every rank reads the stored config (read-only) to learn the device before the process
    # group exists; joining the group waits for all of them, so rank 0 then opens it alone.
    run_id, cfg = read_identity(path)
    dist = setup(cfg.device)
    lock = hold_run_lock(Path(path), dist)  # a second writer would redo the same stages: refused
    try:
        opened = dist.on_main(lambda: RunStore.open(path))
        store = opened if opened is not None else ReplicaStore(path, run_id, cfg)
        return _run(Loop(store, dist=dist))
    finally:
        if lock is not None:
            lock.release()


def _run(loop: Loop) -> Path:
    try:
        path = loop.run()
    except Interrupted:
        loop.dist.finish()  # every rank stopped at the same point
        raise
    loop.dist.finish()
    return path
