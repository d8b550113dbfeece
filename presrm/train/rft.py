"""Rejection-sampling fine-tuning on self-verified solutions (``algo = "rft"``).

The process-based selection: a search's chosen path is kept when the judge accepted every one
of its steps (each chosen step's ``self_score`` at least ``train.rft.min_score``) and it ends in
a final answer. The model is then fine-tuned on those paths, mixed with replay of the data it
was built on so that it keeps what it could already do; ``train.rft.self_share`` is the share
of self-verified examples in the round's data. No label enters: the kept paths are chosen by
the policy's own judgments, and the replay holds only what the base was trained on.

Where ``model = "default"`` the replay is the base recipe's second-phase pool, limited to the
kinds below the level the loop teaches itself: that level and those above it have no label
anywhere in the data. The level just below it is replayed as often as there are verified solutions
(``train.rft.balance_below``): a level taught alone makes the model write its number of steps on the
level below too. The verified solutions of earlier iterations stay in the data
(``train.rft.keep_earlier``), so a level learnt before is not forgotten when the next one is taught.
``train.rft.balance_checks`` adds the base's 1-operation solutions as often too: they are the
questions the step-span re-posing judge asks, so the judge keeps what it checks with.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from presrm.config import RFTConfig
from presrm.errors import PresrmError
from presrm.model.default import DEFAULT_RECIPE, DEFAULT_SPEC
from presrm.model.policy import Policy
from presrm.steps import step_content
from presrm.store.training_rows import accepted_paths
from presrm.tasks import load_task
from presrm.train.default_recipe import converge_examples, train_examples
from presrm.train.eft import ift_examples, solution_text
from presrm.train.examples import SFTExample

LogFn = Callable[[int, dict[str, float]], None]


def verified_examples(
    run_file: str | Path, policy: Policy, iteration: int, min_score: float
) -> list[SFTExample]:
    """The iteration's chosen paths that end in a final answer and whose every step the judge
    accepted (``self_score`` >= ``min_score``; an unjudged step, where all the samples were the
    same step, counts as accepted), each as one whole-solution example."""
    out: list[SFTExample] = []
    for rows in accepted_paths(run_file, iteration).values():
        scores = [row[7] for row in rows]
        if not rows[-1][6] or any(s is not None and s < min_score for s in scores):
            continue
        prompt = policy.solution_prompt(rows[0][9])
        out.append(SFTExample(prompt, solution_text([step_content(r[5]) for r in rows], policy.step_format)))
    return out


def replay_examples(
    policy: Policy, model_spec: str, cfg: RFTConfig, seed: int, *, below: int
) -> list[SFTExample]:
    """The replay pool (shuffled by ``seed``): the default base's own gold solutions of the kinds
    with fewer than ``below`` operations (the level the loop teaches itself and any above it hold no
    label; the base's own 2-operation kind is always kept), or none (``train.rft.replay = "none"``)."""
    if cfg.replay == "none":
        return []
    if model_spec.strip() != DEFAULT_SPEC:
        raise PresrmError(
            f"train.rft.replay = 'base' replays the embedded default model's own data, and model is"
            f" {model_spec!r}: set train.rft.replay = 'none'"
        )
    recipe = DEFAULT_RECIPE
    harder = recipe.harder_fraction if recipe.harder()["n_ops"] < below else 0.0
    mixes = tuple(
        m
        for m, (_, options) in zip(recipe.mixes, recipe.mix_options(), strict=True)
        if options["n_ops"] < below
    )
    easier = replace(
        recipe, harder_fraction=harder, mixes=mixes, data_seed=recipe.data_seed + 7919 * (seed + 1)
    )
    pool = converge_examples(policy, easier)
    random.Random(f"{seed}:rft-replay").shuffle(pool)
    return pool


def level_below_examples(
    policy: Policy, model_spec: str, cfg: RFTConfig, seed: int, *, options: dict[str, Any], count: int
) -> list[SFTExample]:
    """``count`` fresh gold solutions of the arith task with ``options``: the run's own task at the
    level just below the first one taught. None when the base was never trained on that number of
    operations (the level was taught by the loop itself), ``train.rft.balance_below`` is off, the
    replay is off or ``count`` is 0. Taught alone, a level teaches its number of steps: the model then
    writes that many on the level below as well, so the round's data holds that level as often as
    the new one."""
    if not cfg.balance_below:
        return []
    return _base_gold(
        policy, model_spec, cfg, options, count, seed=DEFAULT_RECIPE.data_seed + 104_729 * (seed + 1)
    )


def check_level_examples(
    policy: Policy, model_spec: str, cfg: RFTConfig, seed: int, *, count: int
) -> list[SFTExample]:
    """``count`` fresh gold solutions of the base's own 1-operation kind (its start amounts as wide
    as the base's): the questions the step-span re-posing judge asks. None unless
    ``train.rft.balance_checks``, with the replay on and ``count`` above 0. The replay holds that
    kind at its base share only, and a model trained on longer solutions answers 1-operation
    questions worse: its checks start rejecting right steps."""
    if not cfg.balance_checks:
        return []
    one_op = [options for _, options in DEFAULT_RECIPE.mix_options() if options["n_ops"] == 1]
    if not one_op:
        return []
    return _base_gold(
        policy, model_spec, cfg, one_op[0], count, seed=DEFAULT_RECIPE.data_seed + 130_363 * (seed + 1)
    )


def _base_gold(
    policy: Policy, model_spec: str, cfg: RFTConfig, options: dict[str, Any], count: int, *, seed: int
) -> list[SFTExample]:
    """``count`` fresh gold arith solutions with ``options``, when the replay is on, the model is the
    default one and its base was trained on that number of operations (none otherwise)."""
    if cfg.replay == "none" or count < 1 or model_spec.strip() != DEFAULT_SPEC:
        return []
    recipe = DEFAULT_RECIPE
    kinds = [recipe.options(), recipe.harder(), *(o for _, o in recipe.mix_options())]
    if options.get("n_ops") not in {kind["n_ops"] for kind in kinds}:
        return []
    task = load_task("arith", options)
    return ift_examples(policy, task, task.sample(count, "train", seed=seed))


def round_data(
    verified: list[SFTExample],
    replay: list[SFTExample],
    self_share: float,
    *,
    control: bool = False,
    matched: bool = False,
) -> list[SFTExample]:
    """The verified examples with as much replay as makes them ``self_share`` of the whole (all
    the replay there is, if that is less; only the verified examples without a replay pool).
    ``control``: the replay alone, all of it; with ``matched``, only the replay the verified
    examples would have been given."""
    if control and not matched:
        return list(replay)
    if not verified or not replay or self_share >= 1.0:
        return [] if control else list(verified)
    wanted = round(len(verified) * (1.0 - self_share) / self_share)
    return replay[:wanted] if control else list(verified) + replay[:wanted]


def train_rft(
    policy: Policy, examples: list[SFTExample], cfg: RFTConfig, *, seed: int, log: LogFn | None = None
) -> list[float]:
    """``cfg.updates`` updates of ``cfg.batch_size`` on ``examples`` (loss on the solutions only)."""
    return train_examples(
        policy,
        examples,
        steps=cfg.updates,
        batch_size=cfg.batch_size,
        lr=cfg.lr,
        seed=seed,
        on_loss=None if log is None else lambda step, loss: log(step, {"loss": loss}),
    )
