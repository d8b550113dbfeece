"""Node rows/s of the batched Arrow writer vs row-by-row ``executemany``, measured in one run.

    python benchmarks/bench_store.py [--rows 200000] [--baseline-rows 5000]

Targets (issue 2): batched >= 50x the baseline and >= 200k rows/s on the 2-core CPU machine.
The baseline inserts fewer rows (it is slow); both are reported as rows/s.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from presrm.config import RunConfig
from presrm.store.schema import table_columns
from presrm.store.writer import RunStore


def node_batch(store: RunStore, n: int) -> dict[str, list]:
    ids = list(store.new_ids("node", n))
    return {
        "iteration": [1] * n,
        "phase": ["train"] * n,
        "problem_id": [f"p{i // 40}" for i in range(n)],
        "tree_id": [i // 40 for i in range(n)],
        "node_id": ids,
        "parent_id": [None if i % 40 < 6 else ids[i - 6] for i in range(n)],
        "depth": [1 + (i % 40) // 6 for i in range(n)],
        "expansion": [(i % 40) // 6 for i in range(n)],
        "text": [f"Step {1 + (i % 40) // 6}: {i % 97} + {i % 13} = {i % 97 + i % 13}" for i in range(n)],
        "n_tokens": [18] * n,
        "logprob": [-3.25] * n,
        "finish": ["newline"] * n,
        "self_score": [(i % 6) / 5 for i in range(n)],
        "score_kind": ["win_rate"] * n,
        "soft_score": [0.1 + (i % 6) / 6.25 for i in range(n)],
        "chosen": [i % 6 == 0 for i in range(n)],
        "rejected": [i % 6 == 5 for i in range(n)],
        "rolled_back": [False] * n,
        "is_final": [i % 40 >= 36 for i in range(n)],
        "final_answer": [str(i % 50) if i % 40 >= 36 else None for i in range(n)],
        "parse_status": ["ok"] * n,
        "correct": [(i % 3 == 0) if i % 40 >= 36 else None for i in range(n)],
        "step_check": [i % 4 != 0 for i in range(n)],
    }


def bench_batched(tmp: Path, rows: int) -> float:
    store = RunStore.create(tmp / "batched.duckdb", RunConfig())
    # Build the rows outside the timer: the benchmark measures the store, not the generator.
    chunks = [node_batch(store, 10_000) for _ in range(rows // 10_000)]
    start = time.perf_counter()
    for chunk in chunks:
        store.append_columns("nodes", chunk)
    store.flush()
    return rows / (time.perf_counter() - start)


def bench_executemany(tmp: Path, rows: int) -> float:
    store = RunStore.create(tmp / "rowwise.duckdb", RunConfig())
    cols = node_batch(store, rows)
    names = [c for c in table_columns("nodes") if c != "run_id"]
    records = [[store.run_id] + [cols[c][i] for c in names] for i in range(rows)]
    placeholders = ", ".join("?" for _ in range(len(names) + 1))
    start = time.perf_counter()
    con = duckdb.connect(str(store.path))
    con.executemany(f"INSERT INTO nodes VALUES ({placeholders})", records)
    con.close()
    return rows / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--baseline-rows", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        baseline = bench_executemany(Path(tmp), args.baseline_rows)
        batched = bench_batched(Path(tmp), args.rows)
    ratio = batched / baseline
    print(f"{'writer':<28}{'rows':>10}{'rows/s':>14}")
    print(f"{'executemany (row by row)':<28}{args.baseline_rows:>10}{baseline:>14,.0f}")
    print(f"{'RunStore (Arrow batches)':<28}{args.rows:>10}{batched:>14,.0f}")
    print(f"ratio batched/baseline: {ratio:.1f}x  (targets: >= 50x and >= 200,000 rows/s)")
    ok = ratio >= 50 and batched >= 200_000
    print("PASS" if ok else "BELOW TARGET")
    return 0


if __name__ == "__main__":
    sys.exit(main())
