"""The judge modes by name, and the judge a run's config asks for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from presrm.config import JudgeConfig, RunConfig
from presrm.model.policy import Policy
from presrm.search.judge import resolve_judge_mode
from presrm.search.modes.base import JudgeMode
from presrm.search.modes.check import CheckMode
from presrm.search.modes.likelihood import LikelihoodMode
from presrm.search.modes.pairwise import PairwiseMode
from presrm.search.modes.paraphrase import ParaphraseMode
from presrm.search.modes.pointwise import PointwiseMode
from presrm.search.modes.repose import ReposeMode
from presrm.tasks.base import Task

# Every judge mode (JudgeConfig.mode names the same, plus "auto"); this order is the verifier-gap table's.
MODES: dict[str, type[JudgeMode]] = {
    "likelihood": LikelihoodMode,
    "pointwise": PointwiseMode,
    "pairwise": PairwiseMode,
    "paraphrase": ParaphraseMode,
    "check": CheckMode,
    "repose": ReposeMode,
}


def mode_class(mode: str, *, chat: bool) -> type[JudgeMode]:
    """The class of judge mode ``mode`` (``auto`` resolved for a chat or a raw model)."""
    return MODES[resolve_judge_mode(mode, chat)]


def make_judge(
    policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int = 0
) -> JudgeMode:
    """The policy as its own judge in ``cfg.mode`` (a mode may need the task, e.g. to rewrite the
    questions, and the step token limit its own steps are written with)."""
    return mode_class(cfg.mode, chat=policy.chat).from_config(
        policy, cfg, task, max_step_tokens=max_step_tokens, seed=seed
    )


def own_judge_factory(task: Task, run: RunConfig) -> Callable[[Policy, JudgeConfig], JudgeMode]:
    """What a run judges with: the policy of the moment, in the run's judge mode."""

    def factory(policy: Policy, cfg: JudgeConfig) -> JudgeMode:
        return make_judge(policy, cfg, task, max_step_tokens=run.sampling.max_step_tokens, seed=run.seed)

    return factory


def gap_modes() -> dict[str, dict[str, Any]]:
    """The verifier-gap table's judge names, each with the judge config fields it sets."""
    return {gap: fields for name, cls in MODES.items() for gap, fields in cls.gap_variants(name).items()}
