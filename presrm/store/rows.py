"""Row shapes of the run file's tables, built from in-memory results (the only place rows are shaped)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from presrm.search.tree import Tree
from presrm.tasks.base import Problem


def node_columns(trees: list[Tree], *, iteration: int, phase: str) -> dict[str, list[Any]]:
    """The ``nodes`` rows of ``trees`` as columns (for RunStore.append_columns)."""
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "iteration",
            "phase",
            "problem_id",
            "tree_id",
            "node_id",
            "parent_id",
            "depth",
            "expansion",
            "text",
            "n_tokens",
            "logprob",
            "finish",
            "self_score",
            "score_kind",
            "soft_score",
            "chosen",
            "rejected",
            "rolled_back",
            "is_final",
            "final_answer",
            "parse_status",
            "correct",
            "step_check",
        )
    }
    for tree in trees:
        for n in tree.nodes:
            cols["iteration"].append(iteration)
            cols["phase"].append(phase)
            cols["problem_id"].append(tree.problem.problem_id)
            cols["tree_id"].append(tree.tree_id)
            for key in (
                "node_id",
                "parent_id",
                "depth",
                "expansion",
                "text",
                "n_tokens",
                "logprob",
                "finish",
                "self_score",
                "score_kind",
                "soft_score",
                "chosen",
                "rejected",
                "rolled_back",
                "is_final",
                "final_answer",
                "parse_status",
                "correct",
                "step_check",
            ):
                cols[key].append(getattr(n, key))
    return cols


def judgment_columns(trees: list[Tree], *, iteration: int, phase: str) -> dict[str, list[Any]]:
    """The ``judgments`` rows of ``trees`` as columns."""
    keys = (
        "judgment_id",
        "mode",
        "node_a",
        "node_b",
        "order",
        "check_text",
        "raw_output",
        "verdict",
        "p_a",
        "p_b",
        "winner",
        "expected",
        "verdict_source",
        "probs_at",
    )
    cols: dict[str, list[Any]] = {k: [] for k in ("iteration", "phase", "tree_id", *keys)}
    for tree in trees:
        for j in tree.judgments:
            cols["iteration"].append(iteration)
            cols["phase"].append(phase)
            cols["tree_id"].append(tree.tree_id)
            for key in keys:
                cols[key].append(getattr(j, key))
    return cols


def problem_rows(problems: Sequence[Problem], *, split: str, iteration: int) -> list[dict[str, Any]]:
    """``problems`` rows: each problem with its ground-truth answer and reference steps."""
    return [
        {
            "problem_id": p.problem_id,
            "split": split,
            "iteration": iteration,
            "question": p.question,
            "answer": p.answer,
            "reference_steps": list(p.steps),
            "source": p.source,
        }
        for p in problems
    ]


def eval_rows(trees: Sequence[Tree], *, iteration: int, mode: str) -> list[dict[str, Any]]:
    """``evals`` rows: one per evaluated tree, with its accepted path's graded self-scores."""
    rows = []
    for tree in trees:
        scores = [n.soft_score for n in tree.path if n.soft_score is not None]  # graded, see schema
        final = tree.final
        rows.append(
            {
                "iteration": iteration,
                "mode": mode,
                "problem_id": tree.problem.problem_id,
                "tree_id": tree.tree_id,
                "final_answer": final.final_answer if final else None,
                "correct": tree.correct,
                "n_steps": len(tree.path),
                "n_tokens": sum(n.n_tokens for n in tree.path),
                "min_score": min(scores) if scores else None,
                "mean_score": sum(scores) / len(scores) if scores else None,
                "last_score": scores[-1] if scores else None,
            }
        )
    return rows
