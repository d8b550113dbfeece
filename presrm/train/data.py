"""Training data read back from the run file: step-DPO pairs and PPO step rollouts.

Reading from the store (not from in-memory trees) means a resumed train stage
sees exactly what the search committed, and anyone can rebuild the same data
with SQL.
"""

from __future__ import annotations

from pathlib import Path

from presrm.model.encoding import encode_continuations, encode_prompts
from presrm.model.policy import Policy
from presrm.steps import render_prefix, step_header
from presrm.store.training_rows import accepted_paths, rejected_steps
from presrm.train.examples import StepPair, StepRollout


def _after_header(text: str, depth: int) -> str:
    header = step_header(depth)
    return text[len(header) :] if text.startswith(header) else " " + text


def dpo_pairs_from_store(
    run_file: str | Path, policy: Policy, iteration: int, *, checker_agreed_only: bool = False
) -> list[StepPair]:
    """(prefix, chosen step, rejected step) for every kept preference pair of an iteration's search.

    ``checker_agreed_only``: keep the pairs whose chosen step passes the task's step checker and
    whose rejected step fails it — a ground-truth upper bound for the self-judged pairs.
    """
    paths = accepted_paths(run_file, iteration)
    rejected = rejected_steps(run_file, iteration, checker_agreed_only=checker_agreed_only)
    pairs: list[StepPair] = []
    for rows in paths.values():
        question = rows[0][9]
        prompt = policy.solution_prompt(question)
        for i, row in enumerate(rows):
            node_id, depth, text, is_final = row[1], row[3], row[5], row[6]
            if node_id not in rejected:
                continue
            rej_text, rej_final = rejected[node_id]
            prefix = render_prefix(prompt, [r[5] for r in rows[:i]], policy.step_format) + step_header(depth)
            pairs.append(
                StepPair(
                    prefix,
                    _after_header(text, depth),
                    _after_header(rej_text, depth),
                    bool(is_final),
                    bool(rej_final),
                )
            )
    return pairs


def step_rewards(
    scores: list[float | None], correct: bool | None, finished: bool, reward: str
) -> list[float | None]:
    """Per-step rewards: process = self-scores; outcome = final correctness on the last step —
    not self-rewarding, for comparison; both = the process rewards plus the outcome on the last step.

    A step that was not judged (one distinct candidate, so no comparison) and, under outcome
    rewards, every step but the last carry no reward: None, not a placeholder. The trainer
    normalises rewards over the batch, where a placeholder 0.5 would become a penalty on exactly
    the steps the model was surest of (all its samples agreed)."""
    process: list[float | None] = [None if s is None else float(s) for s in scores]
    if not scores:
        return []
    final = 1.0 if (finished and correct) else 0.0
    if reward == "process":
        return process
    if reward == "outcome":
        return [None] * (len(scores) - 1) + [final]
    if reward == "both":
        last = process[-1]
        return process[:-1] + [final if last is None else last + final]
    raise ValueError(f"unknown reward {reward!r}")


def ppo_rollouts_from_store(
    run_file: str | Path, policy: Policy, iteration: int, *, reward: str
) -> list[StepRollout]:
    """One rollout per tree: its accepted path, each step rewarded at its last token."""
    paths = accepted_paths(run_file, iteration)
    rollouts: list[StepRollout] = []
    for rows in paths.values():
        question = rows[0][9]
        prompt_ids = encode_prompts(policy, [policy.solution_prompt(question)])[0]
        steps = encode_continuations(policy, [r[5] + policy.step_format.separator for r in rows])
        if not prompt_ids or any(not s for s in steps):
            continue
        finished = bool(rows[-1][6])
        rewards = step_rewards([r[7] for r in rows], rows[-1][8], finished, reward)
        rollouts.append(StepRollout(prompt_ids, steps, rewards))
    return rollouts
