"""Node rows/s of presrm's trace writer vs a pandas DataFrame and an Arrow table handed to DuckDB.

    python benchmarks/bench_store.py [--rows 1000000] [--chunk 10000] [--rounds 3]

Every writer gets the same rows, shaped as a run produces them (presrm.store.rows.node_columns):
chunks of ``--chunk`` rows, each a dict of Python lists, one per ``nodes`` column. Each writes
them into a fresh run file (created by RunStore.create, so all start from the same file) and
leaves them durable in it (``CHECKPOINT``, then close), as RunStore.flush does:

* presrm: ``RunStore.append_columns`` per chunk, then one ``flush()``;
* pandas: ``pd.DataFrame`` per chunk, ``pd.concat``, ``df.insert(0, "run_id", ...)``,
  ``INSERT INTO nodes SELECT * FROM df``;
* Arrow: ``pa.table`` per chunk (pyarrow infers the types), ``pa.concat_tables``
  (permissive promotion: a chunk's all-NULL column), the run_id column added,
  ``INSERT INTO nodes SELECT * FROM tbl``.

Two figures per writer: **end to end** (from the Python lists to the file) and **insert only**
(from rows already columnar in memory to the file: presrm's ``flush()`` of buffered rows vs the
``INSERT`` of an already built DataFrame / Arrow table; presrm's flush also converts the rows
gathered since its last row-group-sized conversion, see presrm/store/buffer.py). Methods run interleaved, their order
rotated each round, median reported: the machine is shared and its speed swings, so only the
ratios within one run mean anything. Bytes per stored node = growth of the file / rows.
Targets (issue 16): presrm at least as fast as the best baseline, and >= 1,000,000 node rows/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from presrm.config import RunConfig
from presrm.store.writer import RunStore

Columns = dict[str, list[Any]]


def node_batch(start: int, n: int) -> Columns:
    """``n`` nodes shaped like a width-6 search's (40 nodes a tree, ids from ``start``)."""
    ids = list(range(start, start + n))
    r = range(start, start + n)
    return {
        "iteration": [1] * n,
        "phase": ["train"] * n,
        "problem_id": [f"p{i // 40}" for i in r],
        "tree_id": [i // 40 for i in r],
        "node_id": ids,
        "parent_id": [None if i % 40 < 6 else i - 6 for i in r],
        "depth": [1 + (i % 40) // 6 for i in r],
        "expansion": [(i % 40) // 6 for i in r],
        "text": [f"Step {1 + (i % 40) // 6}: {i % 97} + {i % 13} = {i % 97 + i % 13}" for i in r],
        "n_tokens": [18] * n,
        "logprob": [-3.25 - (i % 7) / 8 for i in r],
        "finish": ["newline"] * n,
        "self_score": [(i % 6) / 5 for i in r],
        "score_kind": ["win_rate"] * n,
        "soft_score": [0.1 + (i % 6) / 6.25 for i in r],
        "chosen": [i % 6 == 0 for i in r],
        "rejected": [i % 6 == 5 for i in r],
        "rolled_back": [False] * n,
        "is_final": [i % 40 >= 36 for i in r],
        "final_answer": [str(i % 50) if i % 40 >= 36 else None for i in r],
        "parse_status": ["ok"] * n,
        "correct": [(i % 3 == 0) if i % 40 >= 36 else None for i in r],
        "step_check": [i % 4 != 0 for i in r],
    }


class Files:
    """Fresh run files, all created the same way; remembers the empty file's size."""

    def __init__(self, root: Path) -> None:
        self.root, self.count = root, 0
        self.empty_bytes = self.new().path.stat().st_size

    def new(self) -> RunStore:
        self.count += 1
        return RunStore.create(self.root / f"run{self.count}.duckdb", RunConfig())


def insert_durably(path: Path, sql: str, frame: object) -> None:
    """What a user's script does with a built table: insert it, checkpoint, close."""
    con = duckdb.connect(str(path))
    con.register("frame", frame)
    con.execute(sql)
    con.execute("CHECKPOINT")
    con.close()


def pandas_frame(chunks: list[Columns], run_id: str) -> pd.DataFrame:
    df = pd.concat([pd.DataFrame(c) for c in chunks], ignore_index=True)
    df.insert(0, "run_id", run_id)
    return df


def arrow_table(chunks: list[Columns], run_id: str) -> pa.Table:
    tbl = pa.concat_tables([pa.table(c) for c in chunks], promote_options="permissive")
    return tbl.add_column(0, "run_id", pa.array([run_id] * tbl.num_rows, pa.string()))


Result = tuple[float, float, int]  # (end-to-end s, insert-only s, stored bytes)


def run_presrm(files: Files, chunks: list[Columns]) -> Result:
    store = files.new()
    start = time.perf_counter()
    for chunk in chunks:
        store.append_columns("nodes", chunk)
    flushing = time.perf_counter()
    store.flush()
    end = time.perf_counter()
    return end - start, end - flushing, store.path.stat().st_size - files.empty_bytes


def baseline(build: Callable[[list[Columns], str], object]) -> Callable[[Files, list[Columns]], Result]:
    def run(files: Files, chunks: list[Columns]) -> Result:
        store = files.new()
        start = time.perf_counter()
        frame = build(chunks, store.run_id)
        inserting = time.perf_counter()
        insert_durably(store.path, "INSERT INTO nodes SELECT * FROM frame", frame)
        end = time.perf_counter()
        return end - start, end - inserting, store.path.stat().st_size - files.empty_bytes

    return run


METHODS: dict[str, Callable[[Files, list[Columns]], Result]] = {
    "presrm RunStore": run_presrm,
    "pandas DataFrame": baseline(pandas_frame),
    "Arrow table": baseline(arrow_table),
}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000, help="rows per append (a run's flush unit)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # The rows exist before the timers start: the benchmark measures the writers, not the generator.
    chunks = [node_batch(s, min(args.chunk, args.rows - s)) for s in range(0, args.rows, args.chunk)]
    rows = sum(len(c["node_id"]) for c in chunks)
    times: dict[str, list[Result]] = {name: [] for name in METHODS}
    names = list(METHODS)
    with tempfile.TemporaryDirectory() as tmp:
        files = Files(Path(tmp))
        METHODS["presrm RunStore"](files, chunks[:1])  # warm-up: pyarrow's and DuckDB's first calls
        for r in range(args.rounds):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                times[name].append(METHODS[name](files, chunks))
                (Path(tmp) / f"run{files.count}.duckdb").unlink()
    med = {
        name: (
            rows / statistics.median(t[0] for t in ts),
            rows / statistics.median(t[1] for t in ts),
            statistics.median(t[2] for t in ts) / rows,
        )
        for name, ts in times.items()
    }
    print(f"{rows:,} node rows in chunks of {args.chunk:,}, median of {args.rounds} interleaved rounds")
    print(f"{'writer':<20}{'end to end rows/s':>19}{'insert only rows/s':>20}{'bytes/node':>12}")
    for name, (e2e, ins, size) in med.items():
        print(f"{name:<20}{e2e:>19,.0f}{ins:>20,.0f}{size:>12.1f}")
    best_e2e = max(v[0] for k, v in med.items() if k != "presrm RunStore")
    best_ins = max(v[1] for k, v in med.items() if k != "presrm RunStore")
    ours = med["presrm RunStore"]
    print(
        f"ratio presrm / best baseline: end to end {ours[0] / best_e2e:.2f}x, insert only {ours[1] / best_ins:.2f}x"
    )
    ok = ours[0] >= best_e2e and ours[0] >= 1_000_000
    print(
        f"targets: >= best baseline ({'met' if ours[0] >= best_e2e else 'missed'}),"
        f" >= 1,000,000 rows/s end to end ({'met' if ours[0] >= 1_000_000 else 'missed'}),"
        f" insert only ({'met' if ours[1] >= 1_000_000 else 'missed'})"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
