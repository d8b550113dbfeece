"""The run header: what ran, on which model and task, and how far it got."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from presrm.errors import StoreError
from presrm.store.db import first_row, open_run


@dataclass(frozen=True)
class RunInfo:
    """The run row and overall counts."""

    run_id: str
    created_at: dt.datetime | None
    presrm_version: str
    model: str
    task: str
    algo: str
    seed: int
    n_problems: int
    n_trees: int
    n_nodes: int
    n_judgments: int
    n_flags: int
    stages: tuple[tuple[int, str], ...]


def run_info(path: str | Path, trees: pa.Table | None = None) -> RunInfo:
    """The run row, counts and finished stages. StoreError if the file has no run row.

    With ``trees`` (a tree summary table of the same run) the tree count comes from it
    instead of a distinct count over every node (cheaper while a large run writes).
    """
    with open_run(path) as con:
        row = first_row(
            con.execute(
                "SELECT run_id, created_at, presrm_version, model, task, algo, seed FROM runs LIMIT 1"
            ).fetchall()
        )
        if row is None:
            raise StoreError(f"{path}: has no run row (not written by `presrm run`?)")
        n_trees_sql = "(SELECT count(DISTINCT tree_id) FROM nodes)" if trees is None else "NULL"
        counts = first_row(
            con.execute(
                f"SELECT (SELECT count(*) FROM problems), {n_trees_sql},"
                " (SELECT count(*) FROM nodes), (SELECT count(*) FROM judgments), (SELECT count(*) FROM flags)"
            ).fetchall()
        )
        assert counts is not None
        stages = con.execute("SELECT iteration, stage FROM stages ORDER BY finished_at, iteration").fetchall()
    return RunInfo(
        run_id=str(row[0]),
        created_at=row[1],
        presrm_version=str(row[2] or ""),
        model=str(row[3] or ""),
        task=str(row[4] or ""),
        algo=str(row[5] or ""),
        seed=int(row[6] or 0),
        n_problems=int(counts[0]),
        n_trees=int(counts[1]) if trees is None else trees.num_rows,
        n_nodes=int(counts[2]),
        n_judgments=int(counts[3]),
        n_flags=int(counts[4]),
        stages=tuple((int(i), str(s)) for i, s in stages),
    )
