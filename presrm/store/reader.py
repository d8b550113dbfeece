"""Read-only access to a run file: one short connection per query.

Used by ``presrm sql``, the evaluation code and the TUI. Each call opens the file
read-only, runs its queries and closes it, so a live run's writer is blocked for
at most one query (and it retries meanwhile).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from presrm.errors import StoreError
from presrm.store.db import open_run


def query_arrow(
    path: str | Path, sql: str, params: Sequence[Any] | None = None, *, timeout: float = 30.0
) -> pa.Table:
    """Run one read-only query and return an Arrow table.

    SQL errors in user-written queries become a one-line StoreError.
    """
    with open_run(path, read_only=True, timeout=timeout) as con:
        try:
            return _to_arrow(con, sql, params)
        except duckdb.Error as err:
            raise StoreError(f"query failed: {str(err).strip().splitlines()[0]}") from None


def _to_arrow(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] | None) -> pa.Table:
    # A relation converts to Arrow without the extra copy of a DB-API result.
    rel = con.sql(sql, params=list(params) if params else None)
    if rel is None:  # a statement with no result set
        return pa.table({})
    # duckdb 2.x renamed arrow() to to_arrow_table().
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow
    result = fetch()
    return result if isinstance(result, pa.Table) else result.read_all()


def query_rows(
    path: str | Path, sql: str, params: Sequence[Any] | None = None, *, timeout: float = 30.0
) -> list[tuple]:
    """Like :func:`query_arrow`, returning Python tuples."""
    with open_run(path, read_only=True, timeout=timeout) as con:
        try:
            return con.execute(sql, list(params or [])).fetchall()
        except duckdb.Error as err:
            raise StoreError(f"query failed: {str(err).strip().splitlines()[0]}") from None


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Base tables of the schema (views excluded), in a stable order."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' ORDER BY table_name"
    ).fetchall()
    return [r[0] for r in rows]


def export_parquet(path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write one Parquet file per table of the run into ``out_dir``."""
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(f"cannot create {out}: {err.strerror}") from None
    written: list[Path] = []
    with open_run(path, read_only=True) as con:
        for table in table_names(con):
            target = out / f"{table}.parquet"
            # COPY needs a literal path; quote it as a SQL string (single quotes doubled).
            literal = "'" + str(target).replace("'", "''") + "'"
            try:
                con.execute(f"COPY {table} TO {literal} (FORMAT parquet)")
            except duckdb.Error as err:
                raise StoreError(f"cannot write {target}: {str(err).splitlines()[0]}") from None
            written.append(target)
    return written
