"""The writer's in-memory buffer of one table: rows as Arrow tables of the schema's types.

Rows arrive in small chunks (a search stage hands over ~10,000 nodes at a time). Each is
converted to Arrow with the column's type known (no type inference; every chunk of a table
gets one schema; DuckDB stores the columns without a cast), and once a DuckDB row group's
worth (122,880 rows) is pending the chunks are copied into one contiguous table per row
group: DuckDB inserts row-group-sized Arrow chunks about a quarter faster than 10,000-row
ones, and chunks that do not end on a row group make its parallel insert leave partial row
groups (larger files).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from presrm.store.schema import table_types

ROW_GROUP = 122_880  # DuckDB's default row group size

ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "BIGINT": pa.int64(),
    "INTEGER": pa.int32(),
    "SMALLINT": pa.int16(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us"),
    "VARCHAR[]": pa.list_(pa.string()),
}


CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, KeyError, OverflowError)


def arrow_column(values: Sequence[Any], sql_type: str) -> pa.Array | pa.ChunkedArray:
    """``values`` as an Arrow array of the column's type; values of another type (an int for a
    VARCHAR column, say) fall back to pyarrow's inference and DuckDB's cast on insert."""
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    try:
        return pa.array(values, ARROW_TYPES[sql_type])
    except CONVERSION_ERRORS:
        return pa.array(values)


def same_schema_runs(chunks: list[pa.Table]) -> list[pa.Table]:
    """Consecutive chunks of one schema, each run concatenated (zero-copy); a chunk whose
    values fell back to another type starts its own run, which DuckDB casts on insert."""
    runs: list[list[pa.Table]] = []
    for chunk in chunks:
        if runs and runs[-1][0].schema.equals(chunk.schema):
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return [pa.concat_tables(run) if len(run) > 1 else run[0] for run in runs]


class TableBuffer:
    """Pending rows of one table (without ``run_id``: the flush selects it as a constant)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.types = {k: t for k, t in table_types(table).items() if k != "run_id"}
        self.tables: list[pa.Table] = []  # row-group-sized, contiguous (or of another schema)
        self._recent: list[pa.Table] = []  # converted appends not yet copied into a row group
        self._recent_rows = 0

    @property
    def rows(self) -> int:
        return sum(t.num_rows for t in self.tables) + self._recent_rows

    def append(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Add rows given as columns (checked by the caller: known names)."""
        columns = {k: v for k, v in columns.items() if k != "run_id"}
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise ValueError(f"{self.table}: columns of different lengths {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        if n == 0:
            return
        arrays: dict[str, Any] = {}
        for name, sql_type in self.types.items():
            if name in columns:
                arrays[name] = arrow_column(columns[name], sql_type)
            else:
                arrays[name] = pa.nulls(n, ARROW_TYPES.get(sql_type, pa.null()))
        self._recent.append(pa.table(arrays))
        self._recent_rows += n
        if self._recent_rows >= ROW_GROUP:
            self._coalesce(final=False)

    def batches(self) -> list[pa.Table]:
        """Everything pending, as few Arrow tables as the schemas allow."""
        self._coalesce(final=True)
        return same_schema_runs(self.tables)

    def _coalesce(self, *, final: bool) -> None:
        """Copy the recent appends into contiguous row groups (the last, partial one only when
        ``final``); appends of another schema stay as they are."""
        if not self._recent:
            return
        schema = self._recent[0].schema
        if not all(t.schema.equals(schema) for t in self._recent):
            self.tables += self._recent
            self._recent, self._recent_rows = [], 0
            return
        table = pa.concat_tables(self._recent)
        cut = table.num_rows if final else table.num_rows - table.num_rows % ROW_GROUP
        self.tables += [
            table.slice(i, min(ROW_GROUP, cut - i)).combine_chunks() for i in range(0, cut, ROW_GROUP)
        ]
        self._recent = [table.slice(cut)] if cut < table.num_rows else []
        self._recent_rows = table.num_rows - cut
