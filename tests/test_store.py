"""Trace store: schema + identity checks, batched writes, tree SQL, export, two-process coexistence."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from presrm.config import RunConfig
from presrm.errors import StoreError
from presrm.store.buffer import ROW_GROUP, TableBuffer
from presrm.store.db import open_run
from presrm.store.reader import export_parquet, query_rows
from presrm.store.schema import SCHEMA_VERSION, TABLES
from presrm.store.writer import RunStore, StageDone

TREE_SQL = """
WITH RECURSIVE tree AS (
    SELECT node_id, parent_id, depth, text, CAST(node_id AS VARCHAR) AS path
    FROM nodes WHERE tree_id = ? AND parent_id IS NULL
    UNION ALL
    SELECT n.node_id, n.parent_id, n.depth, n.text, tree.path || '/' || CAST(n.node_id AS VARCHAR)
    FROM nodes n JOIN tree ON n.parent_id = tree.node_id
)
SELECT node_id, parent_id, depth, text, path FROM tree ORDER BY path
"""


def make_store(tmp_path: Path, name: str = "run.duckdb") -> RunStore:
    return RunStore.create(tmp_path / name, RunConfig(model="tiny"))


def node_columns(store: RunStore, n: int, tree: int = 0) -> dict[str, list]:
    ids = list(store.new_ids("node", n))
    return {
        "iteration": [1] * n,
        "phase": ["train"] * n,
        "problem_id": [f"p{i % 100}" for i in range(n)],
        "tree_id": [tree] * n,
        "node_id": ids,
        "parent_id": [None] + ids[:-1],
        "depth": list(range(1, n + 1)),
        "text": [f"Step {i + 1}: {i} + 1 = {i + 1}" for i in range(n)],
        "n_tokens": [12] * n,
        "self_score": [0.5] * n,
        "chosen": [True] * n,
        "rolled_back": [False] * n,
        "is_final": [False] * (n - 1) + [True],
    }


def test_schema_created_with_version(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with open_run(store.path) as con:
        version = con.execute("SELECT value FROM presrm_meta WHERE key = 'schema_version'").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'nodes' AND column_name = 'self_score'"
        ).fetchone()[0]
    assert version == str(SCHEMA_VERSION)
    assert {t for t, _, _ in TABLES} <= tables
    assert {"step_scores", "chosen_paths", "judge_pairs"} <= tables
    assert "win_rate" in comment


def test_refuses_foreign_and_other_version_files(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE t (a INT)").close()
    with pytest.raises(StoreError, match="not a presrm run database"):
        query_rows(foreign, "SELECT 1")
    store = make_store(tmp_path)
    con = duckdb.connect(str(store.path))
    con.execute("UPDATE presrm_meta SET value = '99' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="schema version 99"):
        query_rows(store.path, "SELECT 1")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match="cannot open as a DuckDB database"):
        query_rows(garbage, "SELECT 1")
    with pytest.raises(StoreError, match="run file not found"):
        query_rows(tmp_path / "missing.duckdb", "SELECT 1")


def test_create_refuses_to_overwrite(tmp_path: Path) -> None:
    make_store(tmp_path)
    with pytest.raises(StoreError, match="already exists"):
        make_store(tmp_path)


def test_batched_write_of_100k_nodes(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.append_columns("nodes", node_columns(store, 100_000))
    assert store.pending_rows == 100_000
    store.flush(StageDone(1, "search", 1.0, {"nodes": 100_000}))
    assert store.pending_rows == 0
    count, distinct, texts = query_rows(
        store.path, "SELECT count(*), count(DISTINCT node_id), count(DISTINCT text) FROM nodes"
    )[0]
    assert count == distinct == texts == 100_000
    assert query_rows(store.path, "SELECT iteration, stage FROM stages") == [(1, "search")]
    assert store.finished_stages() == {(1, "search")}


def test_appends_past_a_row_group_are_cut_at_its_size() -> None:
    # 3 x 70,000 rows: the second append straddles DuckDB's row group (122,880 rows) and is
    # split between the first contiguous row group and the rows still pending.
    buffer = TableBuffer("nodes")
    for k in range(3):
        buffer.append({"node_id": list(range(70_000 * k, 70_000 * (k + 1))), "tree_id": [k] * 70_000})
    assert [t.num_rows for t in buffer.tables] == [ROW_GROUP]
    assert buffer.rows == 210_000
    (batch,) = buffer.batches()
    assert batch.column("node_id").to_pylist() == list(range(210_000))
    assert batch.column("tree_id").to_pylist() == [0] * 70_000 + [1] * 70_000 + [2] * 70_000


def test_recursive_query_rebuilds_a_tree(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    # root r has children a, b; a has children c, d; d has child e
    ids = list(store.new_ids("node", 6))
    r, a, b, c, d, e = ids
    parents = {r: None, a: r, b: r, c: a, d: a, e: d}
    depth = {r: 1, a: 2, b: 2, c: 3, d: 3, e: 4}
    store.append_rows(
        "nodes",
        [
            {
                "tree_id": 7,
                "node_id": n,
                "parent_id": parents[n],
                "depth": depth[n],
                "text": f"step {n} ['x']",
            }
            for n in ids
        ],
    )
    store.append_columns("nodes", node_columns(store, 5, tree=8))  # another tree must not leak in
    store.flush()
    rows = query_rows(store.path, TREE_SQL, [7])
    assert [(row[0], row[1]) for row in rows] == [(n, parents[n]) for n in (r, a, c, d, e, b)]
    assert rows[-1][3] == f"step {b} ['x']"


def test_gathered_appends_keep_their_rows_and_order(tmp_path: Path) -> None:
    # Small appends are gathered before conversion: the caller's later edits of its lists,
    # a different column set and an Arrow column in between must not change what is stored.
    import pyarrow as pa

    store = make_store(tmp_path)
    texts = ["a", "b"]
    store.append_columns("nodes", {"node_id": [0, 1], "tree_id": [0, 0], "text": texts})
    texts[0] = "changed after the append"
    store.append_columns("nodes", {"node_id": [2], "tree_id": [0], "text": ["c"]})
    store.append_columns("nodes", {"node_id": [3], "tree_id": [1], "depth": [2]})
    store.append_columns("nodes", {"node_id": pa.array([4, 5]), "tree_id": [1, 1], "text": ["e", "f"]})
    store.append_columns("nodes", {"node_id": [6], "tree_id": [1], "text": ["g"]})
    assert store.pending_rows == 7
    with pytest.raises(ValueError, match="different lengths"):
        store.append_columns("nodes", {"node_id": [7, 8], "tree_id": [1]})
    store.flush()
    rows = query_rows(store.path, "SELECT node_id, tree_id, text, depth FROM nodes")
    assert rows == [
        (0, 0, "a", None),
        (1, 0, "b", None),
        (2, 0, "c", None),
        (3, 1, None, 2),
        (4, 1, "e", None),
        (5, 1, "f", None),
        (6, 1, "g", None),
    ]


def test_model_text_is_stored_verbatim(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    nasty = "Step 1: '); DROP TABLE nodes; -- [bold]{0}{x}\\frac{a}[b] \x00?"
    store.append_rows("nodes", [{"node_id": 0, "tree_id": 0, "text": nasty}])
    store.flush()
    assert query_rows(store.path, "SELECT text FROM nodes")[0][0] == nasty


def test_values_of_another_type_still_store_as_the_column_type(tmp_path: Path) -> None:
    # Chunks converted with the schema's types and chunks that fall back to inference
    # (an int in a VARCHAR column, a float in an INTEGER one) flush together.
    store = make_store(tmp_path)
    store.append_rows("nodes", [{"node_id": 0, "tree_id": 0, "final_answer": 42, "n_tokens": 3.0}])
    store.append_rows("nodes", [{"node_id": 1, "tree_id": 0, "final_answer": "7", "n_tokens": 5}])
    store.append_rows("nodes", [{"node_id": 2, "tree_id": 0, "final_answer": None, "correct": True}])
    store.flush()
    rows = query_rows(
        store.path, "SELECT node_id, final_answer, n_tokens, correct, run_id FROM nodes ORDER BY node_id"
    )
    assert rows == [
        (0, "42", 3, None, store.run_id),
        (1, "7", 5, None, store.run_id),
        (2, None, None, True, store.run_id),
    ]


def test_unknown_column_is_a_programming_error(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    with pytest.raises(KeyError, match="no column"):
        store.append_rows("nodes", [{"nonsense": 1}])


def test_discard_removes_partial_stage_and_resets_ids(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.append_columns("nodes", node_columns(store, 10))
    store.flush(StageDone(1, "search", 0.1))
    cols = node_columns(store, 5)
    cols["iteration"] = [2] * 5
    store.append_columns("nodes", cols)
    store.flush()  # iteration 2 search never finished
    reopened = RunStore.open(store.path)
    assert reopened.new_ids("node", 1).start == 15
    reopened = RunStore.open(store.path)
    assert reopened.discard([("nodes", "iteration = ?", [2])]) == 5
    assert reopened.new_ids("node", 1).start == 10
    assert reopened.config.model == "tiny"


def test_export_round_trip(tmp_path: Path) -> None:
    store = make_store(tmp_path)
    store.append_columns("nodes", node_columns(store, 1000))
    store.append_rows(
        "judgments",
        [{"judgment_id": 0, "node_a": 1, "node_b": 2, "order": 0, "verdict": None, "raw_output": "[[C]] ?"}],
    )
    store.flush()
    files = export_parquet(store.path, tmp_path / "export")
    names = {f.stem for f in files}
    assert {"nodes", "judgments", "runs", "flags"} <= names
    nodes = pq.read_table(tmp_path / "export" / "nodes.parquet")
    assert nodes.num_rows == 1000
    original = query_rows(store.path, "SELECT node_id, parent_id, text FROM nodes ORDER BY node_id")
    exported = sorted(
        zip(
            nodes["node_id"].to_pylist(),
            nodes["parent_id"].to_pylist(),
            nodes["text"].to_pylist(),
            strict=True,
        )
    )
    assert exported == original
    assert pq.read_table(tmp_path / "export" / "judgments.parquet")["raw_output"].to_pylist() == ["[[C]] ?"]


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from presrm.store import RunStore
    store = RunStore.open(sys.argv[1])
    for batch in range(int(sys.argv[2])):
        ids = list(store.new_ids("node", 200))
        store.append_columns("nodes", {"node_id": ids, "tree_id": [batch] * 200, "text": ["x"] * 200})
        store.flush()
        time.sleep(0.01)
    print("writer done", flush=True)
    """
)

READER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from presrm.store import query_rows
    seen = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        n = query_rows(sys.argv[1], "SELECT count(*) FROM nodes")[0][0]
        seen.append(n)
        if n >= int(sys.argv[2]):
            break
    increasing = all(a <= b for a, b in zip(seen, seen[1:]))
    print(len(seen), len(set(seen)), seen[-1], increasing, flush=True)
    """
)


def test_live_reader_and_writer_in_two_processes(tmp_path: Path) -> None:
    """A reader polling the file in another process never makes the writer fail or lose rows."""
    store = make_store(tmp_path)
    batches = 60
    env = dict(os.environ)
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(store.path), str(batches)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(0.2)
    reader = subprocess.Popen(
        [sys.executable, "-c", READER_SCRIPT, str(store.path), str(batches * 200)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    w_out, w_err = writer.communicate(timeout=120)
    r_out, r_err = reader.communicate(timeout=120)
    assert writer.returncode == 0, w_err
    assert reader.returncode == 0, r_err
    assert "writer done" in w_out
    n_reads, n_distinct, last, increasing = r_out.split()
    assert int(last) == batches * 200
    assert increasing == "True"
    assert int(n_distinct) > 2, "the reader should have seen intermediate progress"
    assert query_rows(store.path, "SELECT count(*), count(DISTINCT node_id) FROM nodes")[0] == (12000, 12000)


def test_a_full_disk_at_checkpoint_is_an_error_and_the_rows_stay_in_the_wal(tmp_path: Path) -> None:
    """The commit fits (the .wal is small) but moving it into the .duckdb file does not.

    DuckDB's checkpoint on close would swallow that and leave the rows only in ``run.duckdb.wal``;
    the writer checkpoints itself, so the run stops with one error line instead of exiting 0.
    """
    store = make_store(tmp_path)
    size = store.path.stat().st_size
    script = textwrap.dedent(
        f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_store import node_columns
        from presrm.errors import StoreError
        from presrm.store import RunStore, StageDone
        store = RunStore.open({str(store.path)!r})
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
        # The .duckdb file may not grow: the ~200 kB .wal fits, the checkpoint's new blocks do not.
        resource.setrlimit(resource.RLIMIT_FSIZE, ({size}, resource.RLIM_INFINITY))
        store.append_columns("nodes", node_columns(store, 2000))
        try:
            store.flush(StageDone(1, "search", 1.0, {{}}))
        except StoreError as err:
            print(err)
            sys.exit(3 if store.pending_rows == 0 else 4)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # committed, so not buffered for a retry
    message = proc.stdout.strip()
    assert "\n" not in message and message.startswith(f"cannot write {store.path}: File too large"), message
    assert f"{store.path}.wal" in message and "--resume" in message
    assert store.path.with_name("run.duckdb.wal").stat().st_size > 100_000
    # With space again, opening the file replays the log: nothing was lost, and the next
    # flush moves it into the .duckdb file.
    assert query_rows(store.path, "SELECT count(*) FROM nodes") == [(2000,)]
    again = RunStore.open(store.path)
    assert again.finished_stages() == {(1, "search")}
    again.append_columns("nodes", node_columns(again, 1))
    again.flush()
    assert not store.path.with_name("run.duckdb.wal").exists()
    assert query_rows(store.path, "SELECT count(*), count(DISTINCT node_id) FROM nodes") == [(2001, 2001)]
