"""Judge pairs from labeled candidate steps of sampled solutions (``warmup.eft_source =
"rollouts"`` or ``"sampled"``).

Two candidates for the same prefix make a pair when their labels (presrm.train.rollout_labels)
say one is good and the other bad: ``hard``, some rollout from one reaches the gold answer and
none from the other; ``soft``, their rollout success rates differ by at least
:data:`SOFT_MARGIN`; ``checker`` (the ``sampled`` source: no rollouts), the task's step checker
accepts one and rejects the other. Such on-policy pairs hold the errors the policy itself makes,
which corrupted reference steps do not; and both steps of a pair share a prefix, so a judge
trained on them cannot score a step by its position alone (README, "A judge trained on the
policy's own steps"). The warm-up trains the judge on pairs from train problems; held-out pairs
come from eval problems, are built once per run with the model of its first eval, and are
kept next to the checkpoints (``RUN.ckpt/eft_test_rollouts.<run id>.jsonl``: a file left by an
earlier run of the same name is never read) so every iteration is judged on the same pairs, a
resumed run included.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

from presrm.config import RunConfig, WarmupConfig
from presrm.errors import ConfigError
from presrm.model.policy import Policy
from presrm.steps import step_content
from presrm.tasks.base import Problem, Task
from presrm.train.eft import build_eft_pairs
from presrm.train.eft_jsonl import load_eft_jsonl
from presrm.train.examples import JudgePair
from presrm.train.rollout_labels import RolloutCost, RolloutSettings, StepLabel, label_steps

SOFT_MARGIN = 0.5
PAIRS_PER_PREFIX = 2  # more would crowd the data with the few prefixes that split


def held_out_file(folder: Path, run_id: str) -> Path:
    return folder / f"eft_test_rollouts.{run_id}.jsonl"


def settings_from_config(cfg: RunConfig, seed: int) -> RolloutSettings:
    return RolloutSettings(
        rollouts=cfg.warmup.rollouts,
        width=cfg.width,
        temperature=cfg.sampling.temperature,
        top_p=cfg.sampling.top_p,
        max_step_tokens=cfg.sampling.max_step_tokens,
        max_steps=cfg.max_steps,
        seed=seed,
    )


LABELS = ("hard", "soft", "checker")


def _split(group: list[StepLabel], label: str) -> tuple[list[StepLabel], list[StepLabel]]:
    usable = [x for x in group if x.usable]
    if label == "checker":
        return [x for x in usable if x.checker is True], [x for x in usable if x.checker is False]
    if label == "hard":
        return [x for x in usable if x.hard()], [x for x in usable if not x.hard()]
    good = [x for x in usable if any(x.soft() - y.soft() >= SOFT_MARGIN for y in usable)]
    bad = [x for x in usable if any(y.soft() - x.soft() >= SOFT_MARGIN for y in usable)]
    return good, bad


def pairs_from_labels(
    groups: Sequence[list[StepLabel]], label: str, rng: random.Random, n: int | None = None
) -> list[JudgePair]:
    """Judge pairs (A/B balanced, shuffled) from labeled candidate groups; at most ``n``."""
    if label not in LABELS:
        raise ValueError(f"label must be one of {', '.join(LABELS)}, got {label!r}")
    raw: list[tuple[StepLabel, StepLabel]] = []
    for group in groups:
        good_steps, bad_steps = _split(group, label)
        combos = [
            (g, b)
            for g in good_steps
            for b in bad_steps
            if (label == "checker" or g.soft() > b.soft()) and step_content(g.text) != step_content(b.text)
        ]
        rng.shuffle(combos)
        raw += combos[:PAIRS_PER_PREFIX]
    rng.shuffle(raw)
    raw = raw[:n] if n is not None else raw
    pairs = []
    for i, (good, bad) in enumerate(raw):
        a_good = i < len(raw) // 2
        pairs.append(
            JudgePair(
                problem_id=good.problem.problem_id,
                question=good.problem.question,
                previous_steps=good.previous,
                step_a=good.text if a_good else bad.text,
                step_b=bad.text if a_good else good.text,
                verdict="A" if a_good else "B",
                check=step_content(good.text),
            )
        )
    rng.shuffle(pairs)
    return pairs


def rollout_eft_pairs(
    policy: Policy,
    task: Task,
    problems: Sequence[Problem],
    settings: RolloutSettings,
    rng: random.Random,
    n: int,
    *,
    label: str = "hard",
    batch: int = 16,
) -> tuple[list[JudgePair], RolloutCost]:
    """Up to ``n`` pairs, labeling problems a batch at a time until there are enough."""
    groups: list[list[StepLabel]] = []
    total = RolloutCost()
    for start in range(0, len(problems), batch):
        if len(pairs_from_labels(groups, label, random.Random(0))) >= n:
            break
        part = list(problems[start : start + batch])
        seeded = RolloutSettings(**{**settings.__dict__, "seed": settings.seed * 1009 + start})
        found, cost = label_steps(policy, task, part, seeded, with_rollouts=label != "checker")
        groups += found
        total.rollouts += cost.rollouts
        total.rollout_steps += cost.rollout_steps
        total.rollout_tokens += cost.rollout_tokens
        total.seconds += cost.seconds
    return pairs_from_labels(groups, label, rng, n), total


def check_eft_source(cfg: RunConfig, task: Task) -> None:
    """Raise a one-line ConfigError when the warm-up's EFT source cannot label ``task``'s steps."""
    if cfg.warmup.eft_source == "sampled" and not task.has_step_checker:
        raise ConfigError(
            f"warmup.eft_source = 'sampled' labels steps with the task's step checker, and task"
            f" {cfg.task!r} has none; use 'rollouts' (labels from rollouts to the gold answer)"
        )


def warmup_problem_count(w: WarmupConfig) -> int:
    """Training problems the warm-up draws: one per IFT example; a sampled source finds pairs only
    where a prefix's candidates split and stops when it has enough, so it gets problems to spare."""
    return max(w.ift_examples, 4 * w.eft_examples if w.eft_source != "reference" else 0, 1)


def warmup_eft_pairs(
    policy: Policy, task: Task, problems: Sequence[Problem], cfg: RunConfig, rng: random.Random
) -> list[JudgePair]:
    """The warm-up's EFT pairs from the configured source (``warmup.eft_source``)."""
    w = cfg.warmup
    if not w.eft_examples:
        return []
    if w.eft_source == "reference":
        return build_eft_pairs(task, problems, rng, w.eft_examples)
    check_eft_source(cfg, task)
    settings = settings_from_config(cfg, cfg.seed + 20_000)
    label = "checker" if w.eft_source == "sampled" else w.rollout_label
    pairs, _cost = rollout_eft_pairs(
        policy, task, problems, settings, rng, w.eft_examples, label=label, batch=cfg.batch_problems
    )
    return pairs


def held_out_rollout_pairs(policy: Policy, task: Task, cfg: RunConfig, file: Path) -> list[JudgePair]:
    """The run's held-out rollout pairs: read from ``file``, or built from eval problems and saved there."""
    if file.exists():
        return load_eft_jsonl(file) if file.stat().st_size else []
    n = cfg.warmup.eft_test_examples
    problems = task.sample(max(1, min(n, cfg.eval_problems or n)), "eval", seed=cfg.seed)
    settings = settings_from_config(cfg, cfg.seed + 30_000)
    rng = random.Random(f"{cfg.seed}:eft_test_rollouts")
    pairs, _cost = rollout_eft_pairs(
        policy, task, problems, settings, rng, n, label=cfg.warmup.rollout_label, batch=cfg.batch_problems
    )
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as out:
        for p in pairs:
            row = {
                "problem_id": p.problem_id,
                "question": p.question,
                "previous_steps": list(p.previous_steps),
                "step_a": p.step_a,
                "step_b": p.step_b,
                "verdict": p.verdict,
                "check": p.check,
            }
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(file)
    return pairs
