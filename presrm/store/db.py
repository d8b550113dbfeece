"""Opening run files: locking-aware connections, identity and version checks.

DuckDB lets one process hold a file read-write and then blocks every other
process, readers included. presrm therefore never keeps a run file
open: the writer opens it for one short transaction per flush and closes it;
readers (``presrm sql``, the TUI) open it read-only per query and close it. Both
sides retry while the other holds the lock, so a live run and a reader coexist
and neither fails because of the other.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb

from presrm.errors import StoreError
from presrm.store.migrate import UPGRADABLE, stored_version, upgrade
from presrm.store.schema import MAGIC, SCHEMA_VERSION, create_statements

NOT_WRITABLE_MARKERS = ("Permission denied", "Operation not permitted", "Read-only file system")
# A DuckDB file starts with three 4 KiB headers, then its fixed-size blocks.
FILE_HEADERS = 3 * 4096
_WHOLE: set[tuple[str, int, int, int]] = set()  # file states check_whole found whole
LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "different configuration", "database is locked")


def is_lock_error(err: BaseException) -> bool:
    """True when DuckDB refused the open because another connection holds the file."""
    return any(marker in str(err) for marker in LOCK_MARKERS)


def connect(path: str | Path, *, read_only: bool, timeout: float = 30.0) -> duckdb.DuckDBPyConnection:
    """Open ``path``, retrying with jittered backoff while another process holds its lock.

    A run file of an older schema version that presrm can upgrade is upgraded first (in place,
    one transaction: presrm.store.migrate), also when it is opened for reading.
    Raises StoreError after ``timeout`` seconds (the message says who to blame).
    """
    con = _connect(path, read_only=read_only, timeout=timeout)
    try:
        old = stored_version(con) in UPGRADABLE
    except duckdb.Error:
        old = False  # not a presrm file: check_identity says so
    if not old:
        return con
    if read_only:
        con.close()
        try:
            writable = _connect(path, read_only=False, timeout=timeout)
        except StoreError as err:
            raise StoreError(
                f"{path}: written by an older presrm (schema version {UPGRADABLE[-1]}); it is upgraded"
                f" in place when first opened, which needs write access ({err})"
            ) from None
        try:
            upgrade(writable)
        finally:
            writable.close()
        return _connect(path, read_only=True, timeout=timeout)
    upgrade(con)
    return con


def _connect(path: str | Path, *, read_only: bool, timeout: float) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if read_only and not path.exists():
        raise StoreError(f"run file not found: {path}")
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as err:
            if not read_only and any(m in str(err) for m in NOT_WRITABLE_MARKERS):
                raise StoreError(f"{path}: cannot open for writing ({_first_line(err)})") from None
            if not is_lock_error(err):
                raise StoreError(f"{path}: cannot open as a DuckDB database ({_first_line(err)})") from None
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"{path}: still locked by another process after {timeout:.0f} s"
                    " (a reader that keeps the file open blocks writers)"
                ) from None
        except duckdb.Error as err:
            raise StoreError(f"{path}: cannot open as a DuckDB database ({_first_line(err)})") from None
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.25)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def check_identity(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """Raise StoreError unless ``con`` is a whole presrm run file of this schema version."""
    check_whole(con, path)
    try:
        rows = dict(con.execute("SELECT key, value FROM presrm_meta").fetchall())
    except duckdb.CatalogException:
        raise StoreError(f"{path}: not a presrm run database (no presrm_meta table)") from None
    except duckdb.Error as err:
        raise StoreError(f"{path}: damaged run file ({_first_line(err)})") from None
    if rows.get("magic") != MAGIC:
        raise StoreError(f"{path}: not a presrm run database (wrong magic in presrm_meta)")
    version = rows.get("schema_version")
    if version != str(SCHEMA_VERSION):
        raise StoreError(
            f"{path}: schema version {version} but this presrm reads version {SCHEMA_VERSION};"
            " use the presrm version that wrote it"
        )


def check_whole(con: duckdb.DuckDBPyConnection, path: str | Path) -> None:
    """Refuse a file cut short (a truncated copy or download) when it is opened, instead of
    failing midway through whichever query first reads a missing block.

    Every block the file uses (table data and metadata) must lie inside it. DuckDB's own block
    count does not say so: it trims free blocks off the end of the file and keeps counting them.
    Checked once per state of the file in a process (readers open it for every query).
    """
    stat = Path(path).stat()
    key = (str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key in _WHOLE:
        return
    try:
        (block_size,) = first_row(con.execute("SELECT block_size FROM pragma_database_size()").fetchall())
        tables = con.execute(
            "SELECT table_name FROM duckdb_tables()"
            " WHERE database_name = current_database() AND schema_name = 'main'"
        ).fetchall()
        blocks = " UNION ALL ".join(
            ["SELECT max(block_id) AS b FROM pragma_metadata_info()"]
            + [
                "SELECT max(block_id) FROM pragma_storage_info('{}') WHERE persistent".format(
                    t.replace("'", "''")
                )
                for (t,) in tables
            ]
        )
        (top,) = first_row(con.execute(f"SELECT coalesce(max(b), -1) FROM ({blocks})").fetchall())
    except duckdb.Error as err:
        raise StoreError(f"{path}: damaged run file ({_first_line(err)})") from None
    expected = FILE_HEADERS + (int(top) + 1) * int(block_size)
    if stat.st_size < expected:
        raise StoreError(
            f"{path}: damaged run file: {stat.st_size} bytes, but its blocks reach byte {expected}"
            " (truncated?); restore it from a copy"
        )
    _WHOLE.add(key)


def initialize(con: duckdb.DuckDBPyConnection) -> None:
    """Create the current schema and the identity rows (one transaction)."""
    con.execute("BEGIN")
    for stmt in create_statements():
        con.execute(stmt)
    con.execute(
        "INSERT OR REPLACE INTO presrm_meta VALUES ('magic', ?), ('schema_version', ?)",
        [MAGIC, str(SCHEMA_VERSION)],
    )
    con.execute("COMMIT")


@contextlib.contextmanager
def open_run(
    path: str | Path, *, read_only: bool = True, timeout: float = 30.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open an existing run file, check it is presrm's, and close it on exit."""
    path = Path(path)
    if not path.exists():
        raise StoreError(f"run file not found: {path}")
    con = connect(path, read_only=read_only, timeout=timeout)
    try:
        check_identity(con, path)
        yield con
    finally:
        con.close()


def first_row(rows: list[Any]) -> Any:
    """The first row of a fetched result, or None.

    (Results are always fetched whole: duckdb 2 refuses new work on a connection
    whose previous result was only partly fetched, as ``fetchone()`` leaves it.)
    """
    return rows[0] if rows else None
