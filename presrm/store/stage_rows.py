"""The rows each stage owns, deleted before a stage that never committed is redone."""

from __future__ import annotations

# Rows each stage owns, deleted before a stage that never committed is redone.
STAGE_ROWS: dict[str, list[tuple[str, str]]] = {
    "warmup": [("train_steps", "iteration = ? AND stage = 'warmup'"), ("iterations", "iteration = ?")],
    "search": [
        ("nodes", "iteration = ? AND phase = 'train'"),
        ("judgments", "iteration = ? AND phase = 'train'"),
        ("problems", "iteration = ? AND split = 'train'"),
    ],
    "train": [("train_steps", "iteration = ? AND stage <> 'warmup'"), ("iterations", "iteration = ?")],
    "eval": [
        ("nodes", "iteration = ? AND phase IN ('eval', 'greedy', 'eft_test')"),
        ("judgments", "iteration = ? AND phase IN ('eval', 'eft_test')"),
        ("evals", "iteration = ?"),
        ("eval_metrics", "iteration = ?"),
        ("problems", "iteration = ? AND split = 'eval'"),
    ],
}
