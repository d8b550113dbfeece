"""Rows of a run file as the reliability tests compare them: every table but what legitimately differs.

Two runs of one config write the same rows apart from the run id, the clocks and the file's
own path; a run killed anywhere and resumed must write exactly the rows of one left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

from presrm.store.reader import query_rows

# A config of no keys: the built-in defaults, which the settings below change.
BUILTIN = str(Path(__file__).parent / "data" / "builtin.toml")

# Small enough to run three times in a test, big enough that step-DPO has pairs to train on.
SMALL_ARGS = [
    BUILTIN,
    "--set",
    "model=tiny",
    "--set",
    "problems=3",
    "--set",
    "eval_problems=1",
    "--set",
    "width=2",
    "--set",
    "max_steps=2",
    "--set",
    "iterations=1",
    "--set",
    "warmup.enabled=false",
    "--set",
    "warmup.eft_test_examples=0",
    "--set",
    "sampling.max_step_tokens=6",
    "--set",
    "batch_problems=1",
    "--set",
    "judge.verdict=probs",
    "--set",
    "judge.check=false",
    "--set",
    "eval_search=false",
    "--set",
    "algo=step-dpo",
]
# What legitimately differs between two runs of one config: the run id, clocks, the file's own path.
VOLATILE_COLUMNS = {"run_id", "created_at", "started_at", "finished_at", "wall_s", "config_json"}
TIMING_METRICS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")


def _columns(path: Path, table: str) -> str:
    names = [
        r[0]
        for r in query_rows(
            path,
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position",
            [table],
        )
    ]
    # checkpoints live next to the run file: compare their name (M1), not the directory
    return ", ".join(
        "regexp_replace(checkpoint, '.*/', '')" if c == "checkpoint" else f'"{c}"'
        for c in names
        if c not in VOLATILE_COLUMNS
    )


def rows(path: Path, table: str, where: str = "true", params: list | None = None) -> list[tuple]:
    if table == "train_steps":
        where += f" AND metric NOT IN {TIMING_METRICS}"
    found = query_rows(
        path, f"SELECT {_columns(path, table)} FROM {table} WHERE {where} ORDER BY ALL", params
    )
    if table == "stages":  # (iteration, stage, detail): the detail without its timings
        found = [
            (i, s, {k: v for k, v in json.loads(d).items() if not k.endswith("_s")}) for i, s, d in found
        ]
    return found


def all_rows(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table but the volatile columns (and training's own clock readings)."""
    tables = query_rows(
        path, "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
    )
    return {t: rows(path, t) for (t,) in tables}


def stage_rows(path: Path) -> dict[tuple[int, str], dict[str, list[tuple]]]:
    """The rows each finished stage owns (the rows --resume deletes when it redoes a stage)."""
    from presrm.store.stage_rows import STAGE_ROWS

    return {
        (i, s): {t: rows(path, t, w, [i]) for t, w in STAGE_ROWS[s]}
        for i, s in query_rows(path, "SELECT iteration, stage FROM stages")
    }


def assert_ids_dense(path: Path) -> None:
    """No duplicates, no holes: the ids of nodes and judgments are exactly 0..n-1."""
    for table, column in (("nodes", "node_id"), ("judgments", "judgment_id")):
        n, distinct, top = query_rows(
            path, f"SELECT count(*), count(DISTINCT {column}), max({column}) FROM {table}"
        )[0]
        assert n == distinct == top + 1, table
