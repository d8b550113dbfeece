"""The command line as a user meets it: help, SQL output, and one-line errors without tracebacks."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from run_rows import BUILTIN

from presrm.config import RunConfig, load_config
from presrm.store.writer import RunStore

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def presrm(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "presrm.cli", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "run.duckdb"
    store = RunStore.create(path, RunConfig(model="tiny"))
    store.append_rows(
        "nodes",
        [
            {
                "node_id": i,
                "tree_id": 0,
                "parent_id": i - 1 if i else None,
                "depth": i + 1,
                "text": f"Step {i + 1}: [bold]{{x}}'",
                "self_score": 0.25 * i,
            }
            for i in range(3)
        ],
    )
    store.flush()
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_help_lists_the_commands() -> None:
    out = presrm("--help").stdout
    for command in ("run", "inspect", "sql", "schema", "export", "eval", "report", "solve"):
        assert command in out
    assert presrm("--version").stdout.startswith("presrm ")


def test_sql_prints_rows_verbatim(run_file: Path) -> None:
    result = presrm("sql", str(run_file), "SELECT node_id, text FROM nodes ORDER BY node_id")
    assert result.returncode == 0, result.stderr
    assert "Step 2: [bold]{x}'" in result.stdout
    csv_out = presrm(
        "sql", str(run_file), "SELECT node_id, self_score FROM nodes ORDER BY 1", "--format", "csv"
    )
    assert csv_out.stdout.splitlines() == ["node_id,self_score", "0,0.0", "1,0.25", "2,0.5"]


def test_sql_is_read_only(run_file: Path) -> None:
    result = presrm("sql", str(run_file), "DELETE FROM nodes")
    assert_one_line_error(result, "query failed")
    assert (
        presrm("sql", str(run_file), "SELECT count(*) FROM nodes", "-f", "csv").stdout.splitlines()[1] == "3"
    )


def test_schema_and_export(run_file: Path, tmp_path: Path) -> None:
    assert "TABLE nodes" in presrm("schema").stdout
    result = presrm("export", str(run_file), "--to", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "nodes.parquet").exists()


def test_bad_inputs_are_one_line_errors(tmp_path: Path, run_file: Path) -> None:
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text("widht = 3\n")
    assert_one_line_error(presrm("run", str(bad_toml)), "unknown key 'widht'")
    assert_one_line_error(presrm("run", BUILTIN, "--set", "width=1"), "width", ">= 2")
    assert_one_line_error(
        presrm("run", BUILTIN, "--set", "model=/no/such/model", "--out", str(tmp_path / "r.duckdb")),
        "/no/such/model",
    )
    assert not (tmp_path / "r.duckdb").exists(), "a failed start must not leave a run file behind"
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0" * 64)
    assert_one_line_error(
        presrm("run", BUILTIN, "--set", f"model={str(corrupt)!r}", "--out", str(tmp_path / "g.duckdb")),
        "corrupt.gguf",
    )
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"question": "q", "answer": "#### 1"}\nnot json\n')
    assert_one_line_error(
        presrm(
            "run",
            BUILTIN,
            "--set",
            f"task='jsonl:{bad_jsonl}'",
            "--set",
            "model=tiny",
            "--out",
            str(tmp_path / "j.duckdb"),
        ),
        "bad.jsonl:2",
    )
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert_one_line_error(
        presrm(
            "run",
            BUILTIN,
            "--set",
            f"task='jsonl:{empty}'",
            "--set",
            "model=tiny",
            "--out",
            str(tmp_path / "e.duckdb"),
        ),
        "empty.jsonl",
    )
    good = tmp_path / "good.jsonl"
    good.write_text('{"question": "1 + 1?", "answer": "1 + 1 = 2\\n#### 2"}\n')
    assert_one_line_error(
        presrm(
            "run",
            BUILTIN,
            "--set",
            f"task='jsonl:{good}'",
            "--set",
            "model=tiny",
            "--set",
            "train.dpo_pairs=checker",
            "--out",
            str(tmp_path / "c.duckdb"),
        ),
        'train.dpo.pairs = "checker" needs a task with a step checker',
    )
    assert not (tmp_path / "c.duckdb").exists()
    foreign = tmp_path / "foreign.duckdb"
    duckdb.connect(str(foreign)).execute("CREATE TABLE t (a INT)").close()
    assert_one_line_error(presrm("sql", str(foreign), "SELECT 1"), "not a presrm run database")
    assert_one_line_error(presrm("inspect", str(foreign)), "not a presrm run database")
    assert_one_line_error(presrm("inspect", str(tmp_path / "missing.duckdb")), "not found")
    assert_one_line_error(presrm("run", "--resume", str(foreign)), "not a presrm run database")
    assert_one_line_error(
        presrm("run", BUILTIN, "--set", "model=tiny", "--out", str(run_file)), "already exists"
    )


def test_unwritable_output_location(tmp_path: Path) -> None:
    # A regular file where the output directory should be: unwritable even for root.
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    assert_one_line_error(
        presrm("run", BUILTIN, "--set", "model=tiny", "--out", str(blocker / "run.duckdb")),
        "cannot create the output directory",
    )


@contextlib.contextmanager
def unwritable(path: Path) -> Iterator[None]:
    """Make ``path`` (a file or a directory) unwritable for this user, root included."""
    mode = path.stat().st_mode
    path.chmod(mode & ~0o222)
    immutable = False
    try:
        if os.geteuid() == 0:  # root ignores file modes; the immutable attribute binds root too
            chattr = shutil.which("chattr")
            immutable = chattr is not None and subprocess.run([chattr, "+i", str(path)]).returncode == 0
            if not immutable:
                pytest.skip("running as root without chattr +i: nothing is read-only")
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


def test_resume_of_a_run_file_that_cannot_be_written(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "run.duckdb"
    cfg = load_config(
        None,
        [
            "model=tiny",
            "iterations=0",
            "eval_problems=1",
            "max_steps=1",
            "sampling.max_step_tokens=4",
            "warmup.enabled=false",
            "warmup.eft_test_examples=0",
        ],
    )
    RunStore.create(run, cfg)
    before = run.read_bytes()
    with unwritable(run):
        assert_one_line_error(presrm("run", "--resume", str(run)), str(run), "cannot open for writing")
        # still readable, and untouched
        assert presrm("sql", str(run), "SELECT count(*) FROM runs", "-f", "csv").stdout.splitlines()[1] == "1"
    assert run.read_bytes() == before
    # A writable file in a directory that is not: its first commit cannot create the write-ahead log.
    with unwritable(run.parent):
        assert_one_line_error(presrm("run", "--resume", str(run)), f"cannot write {run}")
    assert presrm("sql", str(run), "SELECT count(*) FROM stages", "-f", "csv").stdout.splitlines()[1] == "0"


@pytest.mark.parametrize(
    ("args", "message"),
    [(("run", "--bogus"), "No such option: --bogus"), (("config", "extra"), "unexpected extra argument")],
)
def test_usage_errors_are_a_usage_message_not_a_traceback(args: tuple[str, ...], message: str) -> None:
    result = presrm(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
