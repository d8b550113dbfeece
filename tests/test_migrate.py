"""Run files of schema version 2 (written by the presrm before judgments.mode was honest) open, are
upgraded in place once, and then say what their judge really was."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import duckdb
import pytest

from presrm.errors import StoreError
from presrm.eval.evaluate import summarize_iteration
from presrm.eval.report import write_report
from presrm.store.db import open_run
from presrm.store.reader import query_rows
from presrm.store.schema import SCHEMA_VERSION, table_columns
from presrm.store.writer import RunStore

FIXTURE = Path(__file__).parent / "data" / "run_v2"  # EXPORT DATABASE of a v2 run (tiny, likelihood)


def _v2_file(path: Path) -> Path:
    """Rebuild the version-2 run file from its exported schema and rows."""
    con = duckdb.connect(str(path))
    con.execute((FIXTURE / "schema.sql").read_text(encoding="utf-8"))
    con.execute((FIXTURE / "load.sql").read_text(encoding="utf-8").replace("@DIR@", str(FIXTURE)))
    con.close()
    return path


def test_a_v2_file_opened_for_reading_is_upgraded(tmp_path: Path) -> None:
    path = _v2_file(tmp_path / "old.duckdb")
    before = duckdb.connect(str(path), read_only=True)
    assert before.execute("SELECT value FROM presrm_meta WHERE key = 'schema_version'").fetchall() == [("2",)]
    assert before.execute("SELECT DISTINCT mode FROM judgments").fetchall() == [("pairwise",)]
    n_judgments = before.execute("SELECT count(*) FROM judgments").fetchall()[0][0]
    before.close()

    # The likelihood comparison's rows (its two log-probs as raw output) say so now.
    assert query_rows(path, "SELECT DISTINCT mode, verdict_source, probs_at FROM judgments") == [
        ("likelihood", "logprob", None)
    ]
    assert query_rows(path, "SELECT count(*) FROM judgments") == [(n_judgments,)]
    with open_run(path) as con:
        version = con.execute("SELECT value FROM presrm_meta WHERE key = 'schema_version'").fetchall()
        columns = [r[0] for r in con.execute("DESCRIBE judgments").fetchall()]
    assert version == [(str(SCHEMA_VERSION),)]
    assert columns == table_columns("judgments")  # the writer's column order
    # Its stored metrics no longer stand beside Table 3 under the LLM judge's name.
    metrics = dict(query_rows(path, "SELECT metric, value FROM eval_metrics WHERE iteration = 1"))
    assert "judge_accuracy" not in metrics and "judge_consistency" not in metrics
    assert metrics["likelihood_accuracy"] == pytest.approx(1 / 3)
    recomputed = summarize_iteration(path, 1)
    assert recomputed["likelihood_accuracy"] == pytest.approx(metrics["likelihood_accuracy"])
    assert "judge_accuracy" not in recomputed and "judge_consistency" not in recomputed
    # The judge_pairs view still pairs both orders, and names the mode.
    assert query_rows(path, "SELECT DISTINCT mode, consistent FROM judge_pairs") == [("likelihood", True)]
    report = write_report(path, tmp_path / "report").read_text(encoding="utf-8")
    assert "No held-out pairs judged by the LLM judge" in report
    assert "## Likelihood comparison on held-out pairs (no LLM judge)" in report


def test_an_upgraded_file_resumes_writing(tmp_path: Path) -> None:
    path = _v2_file(tmp_path / "old.duckdb")
    store = RunStore.open(path)
    store.append_rows("flags", [{"flag_id": 99, "target": "node", "target_id": 0, "who": "t"}])
    store.flush()
    assert query_rows(path, "SELECT count(*) FROM flags WHERE flag_id = 99") == [(1,)]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write a read-only file")
def test_a_read_only_v2_file_says_why_it_cannot_open(tmp_path: Path) -> None:
    path = _v2_file(tmp_path / "old.duckdb")
    path.chmod(stat.S_IRUSR)
    with pytest.raises(StoreError, match="older presrm"):
        query_rows(path, "SELECT 1")


def test_current_files_are_not_touched(tmp_path: Path) -> None:
    path = _v2_file(tmp_path / "old.duckdb")
    query_rows(path, "SELECT 1")  # upgrades
    copy = tmp_path / "copy.duckdb"
    shutil.copy(path, copy)
    query_rows(path, "SELECT 1")
    assert path.read_bytes() == copy.read_bytes()
