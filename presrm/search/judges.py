"""The judge a run's config asks for."""

from __future__ import annotations

from collections.abc import Callable

from presrm.config import JudgeConfig, RunConfig
from presrm.model.policy import Policy
from presrm.search.check_judge import CheckJudge
from presrm.search.judge import ModelJudge, StepJudge
from presrm.search.paraphrase import ParaphraseJudge
from presrm.tasks.base import Task


def make_judge(
    policy: Policy, cfg: JudgeConfig, task: Task, *, max_step_tokens: int, seed: int = 0
) -> StepJudge:
    """The policy as its own judge in ``cfg.mode`` (the paraphrase judge also needs the task,
    which rewrites the questions, and the step token limit its votes are written with)."""
    if cfg.mode == "paraphrase":
        return ParaphraseJudge(
            policy,
            task,
            paraphrases=cfg.paraphrases,
            seed=seed,
            max_step_tokens=max_step_tokens,
            select_by=cfg.paraphrase_select,
            batch_size=cfg.batch_size,
        )
    if cfg.mode == "check":
        return CheckJudge(policy)
    return ModelJudge(policy, cfg)


def own_judge_factory(task: Task, run: RunConfig) -> Callable[[Policy, JudgeConfig], StepJudge]:
    """What a run judges with: the policy of the moment, in the run's judge mode."""

    def factory(policy: Policy, cfg: JudgeConfig) -> StepJudge:
        return make_judge(policy, cfg, task, max_step_tokens=run.sampling.max_step_tokens, seed=run.seed)

    return factory
