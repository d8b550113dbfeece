"""Change detection: a cheap fingerprint of a run file's contents, for live views."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from presrm.store.db import first_row, open_run


@dataclass(frozen=True)
class DataVersion:
    """Row counts and largest ids of the tables that grow during a run: cheap to read, and
    any write changes at least one of them."""

    nodes: int = 0
    max_node: int = -1
    judgments: int = 0
    max_judgment: int = -1
    flags: int = 0
    max_flag: int = -1
    evals: int = 0
    eval_metrics: int = 0
    iterations: int = 0
    stages: int = 0


_VERSION_SQL = """
SELECT (SELECT count(*) FROM nodes), (SELECT coalesce(max(node_id), -1) FROM nodes),
       (SELECT count(*) FROM judgments), (SELECT coalesce(max(judgment_id), -1) FROM judgments),
       (SELECT count(*) FROM flags), (SELECT coalesce(max(flag_id), -1) FROM flags),
       (SELECT count(*) FROM evals), (SELECT count(*) FROM eval_metrics),
       (SELECT count(*) FROM iterations), (SELECT count(*) FROM stages)
"""


def read_version(con: duckdb.DuckDBPyConnection) -> DataVersion:
    row = first_row(con.execute(_VERSION_SQL).fetchall())
    assert row is not None
    return DataVersion(*(int(v) for v in row))


def data_version(path: str | Path, *, timeout: float = 30.0) -> DataVersion:
    """The run's current :class:`DataVersion` (one short read-only open)."""
    with open_run(path, timeout=timeout) as con:
        return read_version(con)
