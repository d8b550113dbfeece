"""A curriculum: the iterations move to the next level once enough of their own solutions are
self-verified, and every iteration is evaluated on the held-out levels too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from presrm.config import load_config
from presrm.eval.closing import closing_table
from presrm.run.levels import pick_level
from presrm.run.start import start_run
from presrm.store.reader import query_rows

RUN = [
    "model=default",
    "problems=4",
    "eval_problems=3",
    "width=2",
    "max_steps=5",
    "iterations=2",
    "eval_search=false",
    "warmup.enabled=false",
    "warmup.eft_test_examples=0",
    "judge.mode='repose'",
    "algo='rft'",
    "train.rft.updates=2",
    "train.rft.batch_size=4",
    "train.rft.min_score=0.0",  # every answered path counts as verified: the share is 1
    "curriculum.levels=[2, 3]",
    "curriculum.advance_at=0.75",
    "curriculum.eval_levels=[1, 3]",
]


def _levels(path: Path) -> list[tuple[int, int]]:
    rows = query_rows(path, "SELECT iteration, detail FROM stages WHERE stage = 'search' ORDER BY iteration")
    return [(it, json.loads(detail)["level"]) for it, detail in rows]


def test_levels_advance_and_held_out_levels_are_measured(tmp_path: Path) -> None:
    path = start_run(load_config(None, [*RUN, f"out={str(tmp_path / 'run.duckdb')!r}"]))
    assert _levels(path) == [(1, 2), (2, 3)]
    # The second iteration trains on the first one's verified solutions too (train.rft.keep_earlier).
    trained = query_rows(
        path, "SELECT iteration, detail FROM stages WHERE stage = 'train' ORDER BY iteration"
    )
    first, second = (json.loads(detail) for _, detail in trained)
    assert second["verified_earlier"] == first["verified"] > 0
    assert second["examples"] == first["verified"] + second["verified"]
    # The training problems of each iteration are of its level: 2 and 3 operations.
    ops = query_rows(
        path,
        "SELECT iteration, min(len(reference_steps)) - 1, max(len(reference_steps)) - 1 FROM problems"
        " WHERE split = 'train' GROUP BY iteration ORDER BY iteration",
    )
    assert ops == [(1, 2, 2), (2, 3, 3)]
    modes = query_rows(path, "SELECT iteration, mode, count(*) FROM evals GROUP BY ALL ORDER BY ALL")
    assert modes == [(it, m, 3) for it in (0, 1, 2) for m in ("greedy", "greedy:n_ops=1", "greedy:n_ops=3")]
    metrics = dict(query_rows(path, "SELECT metric, value FROM eval_metrics WHERE iteration = 2"))
    for name in ("accuracy_greedy:n_ops=1", "accuracy_greedy:n_ops=3_low", "greedy_gain_vs_m1:n_ops=3"):
        assert name in metrics
    low, high = metrics["greedy_gain_vs_m1:n_ops=3_low"], metrics["greedy_gain_vs_m1:n_ops=3_high"]
    assert low <= metrics["greedy_gain_vs_m1:n_ops=3"] <= high
    # The closing table: a row per model, a column per level, the gain from M1 on.
    table = closing_table(path)
    assert table is not None
    out = Console(width=200, record=True)
    out.print(table)
    text = out.export_text()
    assert [c.header for c in table.columns] == ["model", "held-out", "n_ops=1", "n_ops=3 taught"]
    lines = [line for line in text.splitlines() if line.strip("│ ").startswith(("M0", "M1", "M2"))]
    assert len(lines) == 3 and lines[0].count("[") == 3 and lines[2].count("[") == 6


@pytest.mark.parametrize(
    ("shares", "level"),
    [([], 3), ([0.4], 3), ([0.5], 4), ([0.5, 0.2], 4), ([0.5, 0.9], 5), ([0.6, 0.6, 0.6], 5)],
)
def test_a_level_is_left_only_once_enough_of_it_is_verified(shares: list[float], level: int) -> None:
    assert pick_level([3, 4, 5], 0.5, shares) == level
