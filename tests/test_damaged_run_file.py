"""A damaged run file (truncated, or a DuckDB file that is not a run) is one line from every command."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pytest

from presrm.config import RunConfig
from presrm.store.writer import RunStore

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _whole_run(path: Path) -> Path:
    """A real run file of several DuckDB blocks (so that a cut removes rows, not only free space)."""
    store = RunStore.create(path, RunConfig(model="tiny", out=str(path)))
    n = 20_000
    store.append_columns(
        "nodes",
        {
            "node_id": list(range(n)),
            "tree_id": [i // 10 for i in range(n)],
            "depth": [1 + i % 10 for i in range(n)],
            "text": [f"Step {i % 10 + 1}: {i} + {i} = {2 * i}" for i in range(n)],
        },
    )
    store.flush()
    con = duckdb.connect(str(path), read_only=True)
    (blocks,) = con.execute("SELECT total_blocks FROM pragma_database_size()").fetchone() or (0,)
    con.close()
    assert blocks >= 4, blocks
    return path


def _damaged(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.duckdb"
    if kind == "foreign":
        duckdb.connect(str(path)).execute("CREATE TABLE t AS SELECT range AS a FROM range(10)").close()
    else:
        _whole_run(path)
        size = path.stat().st_size
        os.truncate(path, size // 2 if kind == "truncated" else size - 100)
    return path


def _presrm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "presrm.cli", *args], env=ENV, capture_output=True, text=True, timeout=300
    )


COMMANDS = {
    "sql": lambda run, out: ["sql", str(run), "SELECT count(*) FROM nodes"],
    "export": lambda run, out: ["export", str(run), "--to", str(out)],
    "report": lambda run, out: ["report", str(run), "--out", str(out)],
    "eval": lambda run, out: ["eval", str(run)],
    "inspect": lambda run, out: ["inspect", str(run)],
    "resume": lambda run, out: ["run", "--resume", str(run)],
}
EXPECTED = {
    "truncated": "damaged run file",
    "cut-short": "damaged run file",
    "foreign": "not a presrm run database",
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_every_command_gives_one_line_for_a_damaged_run_file(tmp_path: Path, kind: str) -> None:
    run = _damaged(tmp_path, kind)
    before = run.read_bytes()
    with ThreadPoolExecutor(2) as pool:  # two at a time: each is a Python start-up
        results = dict(
            zip(
                COMMANDS,
                pool.map(lambda c: _presrm(*COMMANDS[c](run, tmp_path / c)), COMMANDS),
                strict=True,
            )
        )
    for command, result in results.items():
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and "Traceback" not in result.stderr, (command, result.stderr)
        assert len(lines) == 1 and lines[0].startswith(f"error: {run}: {EXPECTED[kind]}"), (command, lines)
    assert run.read_bytes() == before, "a command changed the damaged file"


def test_a_whole_run_file_opens(tmp_path: Path) -> None:
    """The size check refuses only what is cut: the same file before the cut answers."""
    run = _whole_run(tmp_path / "run.duckdb")
    result = _presrm("sql", str(run), "SELECT count(*) FROM nodes", "-f", "csv")
    assert result.returncode == 0 and result.stdout.splitlines()[1] == "20000", result.stderr
