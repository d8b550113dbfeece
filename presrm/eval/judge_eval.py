"""Judge accuracy on held-out judge pairs (the paper's Table 3), written to the run file.

Pairs come from the task's eval split (problems never used for training), built the
same way as the warm-up's EFT pairs and fixed by the run seed, so every iteration is
judged on the same pairs: checked reference pairs for a task with a step checker, else
(``warmup.eft_source = "rollouts"``) rollout-labeled pairs built once per run
(presrm.train.eft_rollouts). Each pair's two steps are stored as ``nodes`` (phase
``eft_test``, one tree per pair) and each call as a ``judgments`` row whose
``expected`` column holds the right verdict; both orders are judged. A mode measured on steps
(its ``held_out``, presrm.search.modes.base; the pointwise judge) is measured in that form
instead: each distinct step of the pairs alone, ``expected`` Yes/No, stored under its mode
(presrm.eval.judge_metrics turns the pointwise judge's into pointwise_accuracy and
pointwise_auroc, apart from the pairwise Table 3).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from presrm.config import RunConfig
from presrm.judge_format import POINTWISE_TOKENS
from presrm.model.policy import Policy
from presrm.search.judge import JudgeResult, PairRequest, PointRequest, StepJudge
from presrm.search.judges import make_judge
from presrm.search.modes.base import HELD_OUT_STEPS
from presrm.store.writer import RunStore
from presrm.tasks.base import Task
from presrm.train.eft import build_eft_pairs, point_items
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
    """Judge every held-out pair in both orders (a mode measured on steps: each distinct step
    alone); returns the number of judge calls."""
    pairs = eft_test_pairs(cfg, task, policy, held_out_file(store.path.with_suffix(".ckpt"), store.run_id))
    if not pairs:
        return 0
    judge = make_judge(policy, cfg.judge, task, max_step_tokens=cfg.sampling.max_step_tokens, seed=cfg.seed)
    tree_ids = store.new_ids("tree", len(pairs))
    node_ids = store.new_ids("node", 2 * len(pairs))
    nodes = [
        _node(iteration, pair, tree_id, node_ids[2 * i + side], side)
        for i, (pair, tree_id) in enumerate(zip(pairs, tree_ids, strict=True))
        for side in (0, 1)
    ]
    measure = _steps if judge.held_out == HELD_OUT_STEPS else _pairwise
    judgments = measure(judge.verdicts, judge.name, pairs, tree_ids, node_ids, store, iteration)
    store.append_rows("nodes", nodes)
    store.append_rows("judgments", judgments)
    return len(judgments)


def _node(iteration: int, pair: JudgePair, tree_id: int, node_id: int, side: int) -> dict[str, Any]:
    """Side 0 is the pair's step A, side 1 its step B; ``step_check`` says which one is right."""
    return {
        "iteration": iteration,
        "phase": "eft_test",
        "problem_id": pair.problem_id,
        "tree_id": tree_id,
        "node_id": node_id,
        "parent_id": None,
        "depth": len(pair.previous_steps) + 1,
        "expansion": 0,
        "text": pair.step_b if side else pair.step_a,
        "chosen": False,
        "rejected": False,
        "rolled_back": False,
        "is_final": False,
        "step_check": pair.verdict == ("B" if side else "A"),
    }


def _judgment(iteration: int, judgment_id: int, tree_id: int, mode: str, res: JudgeResult) -> dict[str, Any]:
    return {
        "iteration": iteration,
        "phase": "eft_test",
        "judgment_id": judgment_id,
        "tree_id": tree_id,
        "mode": mode,
        "check_text": res.check_text,
        "raw_output": res.raw_output,
        "verdict": res.verdict,
        "p_a": res.p_a,
        "p_b": res.p_b,
        "verdict_source": res.verdict_source,
        "probs_at": res.probs_at,
    }


def _pairwise(
    judge: StepJudge,
    mode: str,
    pairs: list[JudgePair],
    tree_ids: Sequence[int],
    node_ids: Sequence[int],
    store: RunStore,
    iteration: int,
) -> list[dict[str, Any]]:
    """Both orders of every pair; ``expected`` is the right verdict of that order."""
    requests = []
    for p in pairs:
        requests.append(PairRequest(p.question, p.previous_steps, p.step_a, p.step_b))
        requests.append(PairRequest(p.question, p.previous_steps, p.step_b, p.step_a))
    results = judge.pairwise(requests)
    judgment_ids = store.new_ids("judgment", len(results))
    rows = []
    for i, (pair, tree_id) in enumerate(zip(pairs, tree_ids, strict=True)):
        a, b = node_ids[2 * i], node_ids[2 * i + 1]
        for order, (x, y) in enumerate(((a, b), (b, a))):
            res = results[2 * i + order]
            row = _judgment(iteration, judgment_ids[2 * i + order], tree_id, mode, res)
            row.update(
                node_a=x,
                node_b=y,
                order=order,
                winner=x if res.verdict == "A" else y if res.verdict == "B" else None,
                expected=pair.verdict if order == 0 else ("B" if pair.verdict == "A" else "A"),
            )
            rows.append(row)
    return rows


def _steps(
    judge: StepJudge,
    mode: str,
    pairs: list[JudgePair],
    tree_ids: Sequence[int],
    node_ids: Sequence[int],
    store: RunStore,
    iteration: int,
) -> list[dict[str, Any]]:
    """A step-scoring judge in its own form: P(Yes) for each distinct held-out step (a step shared
    by two pairs is judged once, under its first pair's node); ``expected`` is Yes for the pair's
    right step, No for the other — the labels the warm-up's pointwise examples are built with."""
    by_key: dict[tuple[str, tuple[str, ...], str], tuple[int, int]] = {}  # -> (node id, tree id)
    for i, (pair, tree_id) in enumerate(zip(pairs, tree_ids, strict=True)):
        for side, step in ((0, pair.step_a), (1, pair.step_b)):
            by_key.setdefault((pair.question, pair.previous_steps, step), (node_ids[2 * i + side], tree_id))
    items = point_items(pairs)
    requests = [PointRequest(it.question, it.previous_steps, it.step) for it in items]
    results = judge.pointwise(requests)
    rows = []
    for jid, item, res in zip(store.new_ids("judgment", len(results)), items, results, strict=True):
        node_id, tree_id = by_key[(item.question, item.previous_steps, item.step)]
        row = _judgment(iteration, jid, tree_id, mode, res)
        row.update(
            node_a=node_id,
            node_b=None,
            order=0,
            winner=node_id if res.verdict == POINTWISE_TOKENS[0] else None,
            expected=POINTWISE_TOKENS[0] if item.label else POINTWISE_TOKENS[1],
        )
        rows.append(row)
    return rows
