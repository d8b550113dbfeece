"""The verifier-gap table of one model of a run: M<k>'s checkpoint on the run's own held-out problems."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from presrm.errors import PresrmError
from presrm.eval.verifier_gap import JUDGE_MODES, GapTable, verifier_gap
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.steps import resolve_step_format
from presrm.store.db import open_run
from presrm.store.writer import read_identity
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model


def _model_of(run_file: Path, iteration: int, spec: str, seed: int) -> Policy:
    if iteration == 0:
        ensure_model(spec)
        return load_policy(spec, seed=seed)
    with open_run(run_file) as con:
        rows = con.execute("SELECT checkpoint FROM iterations WHERE iteration = ?", [iteration]).fetchall()
    checkpoint = rows[0][0] if rows else None
    if not checkpoint:
        raise PresrmError(f"{run_file}: no checkpoint of M{iteration} (finished iterations have one)")
    return load_checkpoint(checkpoint)


def run_gap(
    run_file: str | Path,
    iteration: int,
    *,
    problems: int,
    k: int,
    temperature: float | None = None,
    modes: Sequence[str] = JUDGE_MODES,
) -> GapTable:
    """``verifier_gap`` for M<iteration> of ``run_file``, with the run's task, seed and step limits."""
    path = Path(run_file)
    _, cfg = read_identity(path)
    task = load_task(cfg.task, cfg.task_options)
    policy = _model_of(path, iteration, cfg.model, cfg.seed)
    policy.step_format = resolve_step_format(cfg.step_format, policy.chat)
    return verifier_gap(
        policy,
        task,
        task.sample(problems, "eval", seed=cfg.seed),
        k=k,
        temperature=cfg.sampling.temperature if temperature is None else temperature,
        max_steps=cfg.max_steps,
        max_step_tokens=cfg.sampling.max_step_tokens,
        modes=modes,
        check=cfg.judge.check,
        seed=cfg.seed,
    )
