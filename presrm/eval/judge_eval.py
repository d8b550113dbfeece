"""Judge accuracy on held-out judge pairs (the paper's Table 3), written to the run file.

Pairs come from the task's eval split (problems never used for training), built the
same way as the warm-up's EFT pairs and fixed by the run seed, so every iteration is
judged on the same pairs: checked reference pairs for a task with a step checker, else
(``warmup.eft_source = "rollouts"``) rollout-labeled pairs built once per run
(presrm.train.eft_rollouts). Each pair's two steps are stored as ``nodes`` (phase
``eft_test``, one tree per pair) and each call as a ``judgments`` row whose
``expected`` column holds the right verdict; both orders are judged.
"""

from __future__ import annotations

import random
from pathlib import Path

from presrm.config import RunConfig
from presrm.model.policy import Policy
from presrm.search.judge import ModelJudge, PairRequest
from presrm.search.judges import make_judge
from presrm.store.writer import RunStore
from presrm.tasks.base import Task
from presrm.train.eft import build_eft_pairs
from presrm.train.eft_jsonl import eft_train_test_split, load_eft_jsonl
from presrm.train.eft_rollouts import held_out_file, held_out_rollout_pairs
from presrm.train.examples import JudgePair


def user_eft_split(cfg: RunConfig) -> tuple[list[JudgePair], list[JudgePair]]:
    """The user's EFT JSONL (``warmup.eft_jsonl``) split into (train, held-out), by question."""
    if not cfg.warmup.eft_jsonl:
        return [], []
    pairs = load_eft_jsonl(cfg.warmup.eft_jsonl)
    n_test = min(cfg.warmup.eft_test_examples, len(pairs) // 5)
    return eft_train_test_split(pairs, n_test, random.Random(f"{cfg.seed}:eft_jsonl"))


def eft_test_pairs(
    cfg: RunConfig, task: Task, policy: Policy | None = None, cache: Path | None = None
) -> list[JudgePair]:
    """Held-out judge pairs: built from the task's eval split (checked ones when it has a step
    checker; rollout-labeled ones, kept in ``cache``, with the rollout EFT source), plus the
    held-out part of the user's EFT JSONL."""
    n = cfg.warmup.eft_test_examples
    pairs: list[JudgePair] = []
    if n and task.has_step_checker:
        problems = task.sample(max(1, min(n, cfg.eval_problems or n)), "eval", seed=cfg.seed)
        pairs = build_eft_pairs(task, problems, random.Random(f"{cfg.seed}:eft_test"), n)
    elif n and cfg.warmup.eft_source == "rollouts" and policy is not None and cache is not None:
        pairs = held_out_rollout_pairs(policy, task, cfg, cache)
    return pairs + user_eft_split(cfg)[1]


def judge_eft_test(policy: Policy, cfg: RunConfig, task: Task, store: RunStore, iteration: int) -> int:
    """Judge every held-out pair in both orders; returns the number of judge calls."""
    pairs = eft_test_pairs(cfg, task, policy, held_out_file(store.path.with_suffix(".ckpt"), store.run_id))
    if not pairs:
        return 0
    judge = make_judge(policy, cfg.judge, task, max_step_tokens=cfg.sampling.max_step_tokens, seed=cfg.seed)
    requests = []
    for p in pairs:
        requests.append(PairRequest(p.question, p.previous_steps, p.step_a, p.step_b))
        requests.append(PairRequest(p.question, p.previous_steps, p.step_b, p.step_a))
    results = judge.pairwise(requests)
    # The mode these calls really used (a pointwise ModelJudge compares with the pairwise prompt).
    mode = judge.pairwise_mode if isinstance(judge, ModelJudge) else judge.mode
    tree_ids = store.new_ids("tree", len(pairs))
    node_ids = store.new_ids("node", 2 * len(pairs))
    judgment_ids = store.new_ids("judgment", len(results))
    nodes, judgments = [], []
    for i, (pair, tree_id) in enumerate(zip(pairs, tree_ids, strict=True)):
        a, b = node_ids[2 * i], node_ids[2 * i + 1]
        depth = len(pair.previous_steps) + 1
        for node_id, text, right in (
            (a, pair.step_a, pair.verdict == "A"),
            (b, pair.step_b, pair.verdict == "B"),
        ):
            nodes.append(
                {
                    "iteration": iteration,
                    "phase": "eft_test",
                    "problem_id": pair.problem_id,
                    "tree_id": tree_id,
                    "node_id": node_id,
                    "parent_id": None,
                    "depth": depth,
                    "expansion": 0,
                    "text": text,
                    "chosen": False,
                    "rejected": False,
                    "rolled_back": False,
                    "is_final": False,
                    "step_check": right,
                }
            )
        for order, (x, y) in enumerate(((a, b), (b, a))):
            res = results[2 * i + order]
            expected = pair.verdict if order == 0 else ("B" if pair.verdict == "A" else "A")
            winner = x if res.verdict == "A" else y if res.verdict == "B" else None
            judgments.append(
                {
                    "iteration": iteration,
                    "phase": "eft_test",
                    "judgment_id": judgment_ids[2 * i + order],
                    "tree_id": tree_id,
                    "mode": mode,
                    "node_a": x,
                    "node_b": y,
                    "order": order,
                    "check_text": res.check_text,
                    "raw_output": res.raw_output,
                    "verdict": res.verdict,
                    "p_a": res.p_a,
                    "p_b": res.p_b,
                    "winner": winner,
                    "expected": expected,
                    "verdict_source": res.verdict_source,
                    "probs_at": res.probs_at,
                }
            )
    store.append_rows("nodes", nodes)
    store.append_rows("judgments", judgments)
    return len(results)
