"""The judge a run's config asks for."""

from __future__ import annotations

from presrm.config import JudgeConfig
from presrm.model.policy import Policy
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
            policy, task, paraphrases=cfg.paraphrases, seed=seed, max_step_tokens=max_step_tokens
        )
    return ModelJudge(policy, cfg)
