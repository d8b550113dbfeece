"""The run's writer: buffered rows, flushed as Arrow batches in one short transaction.

Rows accumulate in memory and are appended with one ``INSERT … SELECT`` per table
from an Arrow table, inside a single transaction that also records any finished
stage. A stage's rows and its ``stages`` row therefore become visible together:
after a crash, a stage is either wholly committed or its partial rows are removed
by :meth:`RunStore.discard` before it is redone (see presrm/run/loop.py).

The file is opened only for the duration of a flush (see db.py for why).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from presrm import __version__, faults
from presrm.config import RunConfig
from presrm.errors import StoreError
from presrm.store.buffer import TableBuffer
from presrm.store.db import check_identity, connect, initialize, is_lock_error
from presrm.store.schema import table_types

# id counters: which table/column each one numbers
ID_COLUMNS = {
    "node": ("nodes", "node_id"),
    "judgment": ("judgments", "judgment_id"),
    "tree": ("nodes", "tree_id"),
}


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> int:
    row = con.execute(sql, list(params)).fetchone()
    return int(row[0]) if row is not None else 0


def _checkpoint_error(err: BaseException) -> str:
    # "FATAL Error: Failed to create checkpoint because of error: Could not write file "x": File too large"
    line = str(err).splitlines()[0] if str(err) else type(err).__name__
    return line.rsplit(": ", 1)[-1] if "Could not write file" in line else line


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass
class StageDone:
    """A stage that commits together with the rows flushed with it."""

    iteration: int
    stage: str
    wall_s: float
    detail: dict[str, Any] = field(default_factory=dict)


class RunStore:
    """Append-only access to one run file (plus the few updates the loop needs)."""

    def __init__(self, path: Path, run_id: str, config: RunConfig, counters: dict[str, int]) -> None:
        self.path = path
        self.run_id = run_id
        self.config = config
        self._counters = counters
        self._buffers: dict[str, TableBuffer] = {}
        self._sql: list[tuple[str, list[Any]]] = []

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, config: RunConfig) -> RunStore:
        """Create a new run file. Refuses to overwrite an existing one."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path} already exists: use --resume to continue it, or choose another --out")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the output directory {path.parent}: {err.strerror}") from None
        run_id = uuid.uuid4().hex[:12]
        try:
            con = connect(path, read_only=False)
        except StoreError:
            raise
        try:
            initialize(con)
            con.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    run_id,
                    utcnow(),
                    __version__,
                    config.to_json(),
                    config.model,
                    config.task,
                    config.algo,
                    config.seed,
                ],
            )
        except Exception as err:  # e.g. disk full, read-only directory
            con.close()
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".wal").unlink(missing_ok=True)  # a failed commit leaves its log
            raise StoreError(f"cannot write {path}: {str(err).splitlines()[0]}") from None
        con.close()
        return cls(path, run_id, config, {k: 0 for k in ID_COLUMNS})

    @classmethod
    def open(cls, path: str | Path) -> RunStore:
        """Open an existing run file for appending (``--resume``)."""
        path = Path(path)
        if not path.exists():
            raise StoreError(f"run file not found: {path}")
        con = connect(path, read_only=False)
        try:
            check_identity(con, path)
            row = con.execute("SELECT run_id, config_json FROM runs LIMIT 1").fetchone()
            if row is None:
                raise StoreError(f"{path}: has no run row")
            counters = {}
            for kind, (table, column) in ID_COLUMNS.items():
                counters[kind] = _scalar(con, f"SELECT coalesce(max({column}) + 1, 0) FROM {table}")
        finally:
            con.close()
        return cls(path, row[0], RunConfig.from_json(row[1]), counters)

    # ---- ids -----------------------------------------------------------------------------
    def new_ids(self, kind: str, n: int) -> range:
        """Reserve ``n`` consecutive ids of a kind (node, judgment, tree)."""
        start = self._counters[kind]
        self._counters[kind] = start + n
        return range(start, start + n)

    # ---- buffering -----------------------------------------------------------------------
    def append_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        """Buffer rows given as columns; missing columns are NULL, run_id is filled in."""
        unknown = set(columns) - set(table_types(table))
        if unknown:
            raise KeyError(f"{table} has no column(s) {sorted(unknown)}")
        if table not in self._buffers:
            self._buffers[table] = TableBuffer(table)
        self._buffers[table].append(columns)

    def append_rows(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Buffer rows given as dicts (convenient for small batches)."""
        if not rows:
            return
        keys: list[str] = []
        for row in rows:
            for key in row:
                if key not in keys:
                    keys.append(key)
        self.append_columns(table, {k: [row.get(k) for row in rows] for k in keys})

    def execute_on_flush(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Queue a statement (e.g. an UPDATE) to run inside the next flush's transaction."""
        self._sql.append((sql, list(params)))

    def mark_iteration_finished(self, iteration: int, finished_at: dt.datetime) -> None:
        """Queue setting M<iteration>'s ``finished_at`` (commits with the next flush)."""
        self.execute_on_flush(
            "UPDATE iterations SET finished_at = ? WHERE run_id = ? AND iteration = ?",
            [finished_at, self.run_id, iteration],
        )

    @property
    def pending_rows(self) -> int:
        return sum(b.rows for b in self._buffers.values())

    # ---- flushing ------------------------------------------------------------------------
    def flush(self, stage: StageDone | None = None, *, wait: bool = True, timeout: float = 120.0) -> bool:
        """Write everything buffered (and ``stage``) in one transaction.

        With ``wait=False`` a flush that finds the file locked by a reader returns
        False and keeps the buffer for next time instead of stalling the run.
        """
        if not self._buffers and not self._sql and stage is None:
            return True
        try:
            con = connect(self.path, read_only=False, timeout=timeout if wait else 0.05)
        except StoreError as err:
            if not wait and "locked" in str(err):
                return False
            raise
        try:
            con.execute("BEGIN")
            written = 0
            for table, buffer in self._buffers.items():
                for batch in buffer.batches():
                    names = ", ".join(f'"{c}"' for c in batch.column_names)
                    con.register("__presrm_batch", batch)
                    con.execute(
                        f'INSERT INTO {table} ("run_id", {names}) SELECT ?, {names} FROM __presrm_batch',
                        [self.run_id],
                    )
                    con.unregister("__presrm_batch")
                    written += batch.num_rows
            for sql, params in self._sql:
                con.execute(sql, params)
            if stage is not None:
                con.execute(
                    "INSERT INTO stages VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        self.run_id,
                        stage.iteration,
                        stage.stage,
                        utcnow(),
                        stage.wall_s,
                        json.dumps(stage.detail),
                    ],
                )
            faults.point("flush")
            con.execute("COMMIT")
        except Exception as err:
            with contextlib.suppress(Exception):
                con.execute("ROLLBACK")
            con.close()
            if is_lock_error(err):
                raise StoreError(f"{self.path}: locked during flush") from None
            # The buffer is kept: nothing already produced is lost if the caller retries.
            raise StoreError(f"cannot write {self.path}: {str(err).splitlines()[0]}") from None
        # Committed: the rows are durable in the write-ahead log, so the buffer goes either way.
        self._buffers.clear()
        self._sql.clear()
        faults.point("commit")
        try:
            # Move them into the .duckdb file now. DuckDB's own checkpoint on close swallows a
            # failure (a full disk) and leaves the data in the .wal beside the file, where a
            # user who copies only the .duckdb file would lose it.
            con.execute("CHECKPOINT")
        except Exception as err:
            raise StoreError(
                f"cannot write {self.path}: {_checkpoint_error(err)} (the rows are safe in {self.path}.wal;"
                " free space and continue with presrm run --resume)"
            ) from None
        finally:
            con.close()
        return True

    # ---- resume support --------------------------------------------------------------------
    def finished_stages(self) -> set[tuple[int, str]]:
        con = connect(self.path, read_only=True)
        try:
            return {
                (int(i), str(s)) for i, s in con.execute("SELECT iteration, stage FROM stages").fetchall()
            }
        finally:
            con.close()

    def discard(self, deletes: Sequence[tuple[str, str, Sequence[Any]]]) -> int:
        """Delete rows of a stage that never committed, ``(table, where_sql, params)`` each.

        Called before a stage is redone so that a killed run leaves no duplicates.
        Id counters restart after the surviving rows, so redone rows get the same ids.
        """
        if self._buffers or self._sql:
            raise RuntimeError("discard() with unflushed rows")
        con = connect(self.path, read_only=False)
        deleted = 0
        try:
            con.execute("BEGIN")
            for table, where, params in deletes:
                deleted += _scalar(
                    con, f"DELETE FROM {table} WHERE run_id = ? AND ({where})", [self.run_id, *params]
                )
            con.execute("COMMIT")
            for kind, (table, column) in ID_COLUMNS.items():
                self._counters[kind] = _scalar(con, f"SELECT coalesce(max({column}) + 1, 0) FROM {table}")
        except duckdb.Error as err:  # e.g. disk full: nothing was deleted
            raise StoreError(f"cannot write {self.path}: {str(err).splitlines()[0]}") from None
        finally:
            con.close()
        return deleted


class ReplicaStore(RunStore):
    """What a rank other than 0 of a data-parallel run holds instead of the writer.

    DuckDB allows one writing process per file, so only rank 0 opens the run file
    (presrm/run/distributed.py). A replica knows the run's identity (path, run id, config)
    and drops the rows handed to it: rank 0 gathers every rank's results and writes
    them. Reading the stages back is rank 0's job too; a replica refuses.
    """

    def __init__(self, path: str | Path, run_id: str, config: RunConfig) -> None:
        super().__init__(Path(path), run_id, config, {k: 0 for k in ID_COLUMNS})

    def append_columns(self, table: str, columns: Mapping[str, Sequence[Any]]) -> None:
        return None

    def execute_on_flush(self, sql: str, params: Sequence[Any] = ()) -> None:
        return None

    def flush(self, stage: StageDone | None = None, *, wait: bool = True, timeout: float = 120.0) -> bool:
        return True

    def discard(self, deletes: Sequence[tuple[str, str, Sequence[Any]]]) -> int:
        return 0

    def finished_stages(self) -> set[tuple[int, str]]:
        raise RuntimeError("a replica does not read the run file; rank 0 broadcasts its stages")


def read_identity(path: str | Path) -> tuple[str, RunConfig]:
    """(run id, config) of an existing run file, read through a read-only connection."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"run file not found: {path}")
    con = connect(path, read_only=True)
    try:
        check_identity(con, path)
        row = con.execute("SELECT run_id, config_json FROM runs LIMIT 1").fetchone()
    finally:
        con.close()
    if row is None:
        raise StoreError(f"{path}: has no run row")
    return str(row[0]), RunConfig.from_json(row[1])
