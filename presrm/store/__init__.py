"""The DuckDB trace store: schema (versioned), writer, read-only queries."""

from presrm.store.db import connect, open_run
from presrm.store.reader import export_parquet, query_arrow, query_rows
from presrm.store.schema import SCHEMA_VERSION, describe_schema
from presrm.store.writer import RunStore, StageDone

__all__ = [
    "SCHEMA_VERSION",
    "RunStore",
    "StageDone",
    "connect",
    "describe_schema",
    "export_parquet",
    "open_run",
    "query_arrow",
    "query_rows",
]
