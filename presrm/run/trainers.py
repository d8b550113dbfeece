"""The training stage's trainers, one per ``algo``: each builds its data from the run file, trains
M_{k-1} in place through the loop's logged-training wrapper, and says what it trained on."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from presrm.errors import PresrmError
from presrm.model.policy import Policy
from presrm.train.data import dpo_pairs_from_store, ppo_rollouts_from_store

if TYPE_CHECKING:
    from presrm.run.loop import Loop

Trained = tuple[list, int, dict[str, Any]]
"""The per-update records, how many examples of the search were trained on, extra stage detail."""


def train_step_dpo(loop: Loop, policy: Policy, iteration: int) -> Trained:
    from presrm.train.dpo import train_step_dpo as train

    cfg = loop.cfg
    pairs = loop.dist.from_main(
        lambda: dpo_pairs_from_store(
            loop.store.path, policy, iteration, checker_agreed_only=cfg.train.dpo.pairs == "checker"
        )
    )
    records = loop._train_logged(
        "step-dpo",
        iteration,
        len(pairs),
        lambda log: train(policy, pairs, cfg.train.dpo, seed=cfg.seed + iteration, log=log),
    )
    return records, len(pairs), {}


def train_ppo(loop: Loop, policy: Policy, iteration: int) -> Trained:
    from presrm.train.ppo_stage import train_ppo as train

    cfg = loop.cfg
    rollouts = loop.dist.from_main(
        lambda: ppo_rollouts_from_store(loop.store.path, policy, iteration, reward=cfg.train.reward)
    )

    def ppo(log: Callable[[int, dict], None]) -> list:
        records, loop.value_head = train(
            policy,
            rollouts,
            cfg.train.ppo,
            seed=cfg.seed + iteration,
            value_head=loop.value_head,  # the critic goes on from M_{k-1}'s
            log=log,
            # Data parallel: DDP over the run's process group, each rank on its share.
            accelerator=loop.dist.accelerator(policy.device) if loop.dist.enabled else None,
        )
        return records

    return loop._train_logged("ppo", iteration, len(rollouts), ppo), len(rollouts), {}


def train_rft(loop: Loop, policy: Policy, iteration: int) -> Trained:
    """Fine-tune on the search's self-verified solutions with replay (presrm.train.rft)."""
    from presrm.run.levels import level_options
    from presrm.train.rft import (
        check_level_examples,
        level_below_examples,
        replay_examples,
        round_data,
        verified_examples,
    )
    from presrm.train.rft import train_rft as train

    if loop.dist.enabled:
        raise PresrmError("algo = 'rft' trains in one process: run it without torchrun or accelerate launch")
    cfg, rft = loop.cfg, loop.cfg.train.rft
    verified = verified_examples(loop.store.path, policy, iteration, rft.min_score)
    earlier = [
        e
        for k in range(iteration)
        if rft.keep_earlier
        for e in verified_examples(loop.store.path, policy, k, rft.min_score)
    ]
    own = verified + earlier
    # The first level the loop teaches itself: no replay at or above it.
    below = min(cfg.curriculum.levels) if cfg.curriculum.levels else int(cfg.task_options.get("n_ops", 2))
    wanted = own or rft.control  # the control trains on the replay even without a verified one
    seed = cfg.seed + iteration
    replay = replay_examples(policy, cfg.model, rft, seed=seed, below=below) if wanted else []
    matched = rft.control_replay == "matched"
    examples = round_data(own, replay, rft.self_share, control=rft.control, matched=matched)
    level_below = (
        level_below_examples(
            policy, cfg.model, rft, seed, options=level_options(cfg, below - 1), count=len(own)
        )
        if wanted and cfg.task == "arith"
        else []
    )
    check_level = (
        check_level_examples(policy, cfg.model, rft, seed, count=len(own))
        if wanted and cfg.task == "arith"
        else []
    )
    examples += level_below + check_level
    used = 0 if rft.control else len(own)
    records = loop._train_logged(
        "rft",
        iteration,
        len(examples) if rft.control else used,
        lambda log: train(policy, examples, rft, seed=seed, log=log),
        updates=rft.updates,
    )
    extra = {
        "verified": len(verified),
        "verified_earlier": len(earlier),
        "replay": len(examples) - used,
        "level_below": len(level_below),
        "check_level": len(check_level),
    }
    return records, used, extra


TRAINERS: dict[str, Callable[[Loop, Policy, int], Trained]] = {
    "step-dpo": train_step_dpo,
    "ppo": train_ppo,
    "rft": train_rft,
}
