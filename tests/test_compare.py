"""Gains over the start model (M1) with paired intervals, and `presrm report` on several run files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from presrm.config import RunConfig
from presrm.eval.compare import write_comparison
from presrm.eval.evaluate import summarize_iteration
from presrm.eval.report import ReportError
from presrm.store.writer import RunStore


def _run(path: Path, seed: int, m1: list[bool], m2: list[bool]) -> Path:
    """A run whose M1 and M2 were evaluated greedily on the same problems p0, p1, …"""
    store = RunStore.create(path, RunConfig(model="tiny", seed=seed))
    store.append_rows("iterations", [{"iteration": i, "model_name": f"M{i}"} for i in (1, 2)])
    rows = [
        {"iteration": it, "mode": "greedy", "problem_id": f"p{i}", "correct": ok}
        for it, outcomes in ((1, m1), (2, m2))
        for i, ok in enumerate(outcomes)
    ]
    store.append_rows("evals", rows)
    store.flush()
    return store.path


def test_greedy_gain_over_m1_is_paired_on_the_same_problems(tmp_path: Path) -> None:
    # M2 fixes p2 and p3 and breaks p0: differences -1, 0, +1, +1 -> mean 0.25, sample var 0.916667
    path = _run(tmp_path / "a.duckdb", 0, [True, True, False, False], [False, True, True, True])
    s2 = summarize_iteration(path, 2)
    half = 1.959964 * (0.916667 / 4) ** 0.5
    assert s2["greedy_gain_vs_m1"] == pytest.approx(0.25)
    # The upper end, 0.25 + 0.94, is clipped to 1: a difference of two 0/1 outcomes cannot pass it.
    assert (s2["greedy_gain_vs_m1_low"], s2["greedy_gain_vs_m1_high"]) == pytest.approx(
        (0.25 - half, 1.0), abs=1e-5
    )
    assert "greedy_gain_vs_m1" not in summarize_iteration(path, 1)  # M1 is the baseline itself


def test_a_run_without_warm_up_measures_its_gains_from_m0(tmp_path: Path) -> None:
    # warmup.enabled = false: the iterations start from M0, so M2's gain is against M0, not M1
    store = RunStore.create(tmp_path / "cold.duckdb", RunConfig(model="tiny", warmup={"enabled": False}))
    outcomes = {0: [False, False, True, True], 1: [True, False, True, True], 2: [True, True, True, True]}
    store.append_rows("iterations", [{"iteration": i, "model_name": f"M{i}"} for i in outcomes])
    store.append_rows(
        "evals",
        [
            {"iteration": it, "mode": "greedy", "problem_id": f"p{i}", "correct": ok}
            for it, oks in outcomes.items()
            for i, ok in enumerate(oks)
        ],
    )
    store.flush()
    assert summarize_iteration(store.path, 1)["greedy_gain_vs_m1"] == pytest.approx(0.25)
    assert summarize_iteration(store.path, 2)["greedy_gain_vs_m1"] == pytest.approx(0.5)
    assert "greedy_gain_vs_m1" not in summarize_iteration(store.path, 0)


def test_report_sets_runs_side_by_side(tmp_path: Path) -> None:
    a = _run(tmp_path / "seed0.duckdb", 0, [True, False, False, False], [True, True, False, False])
    b = _run(tmp_path / "seed1.duckdb", 1, [True, True, False, False], [True, True, True, True])
    md = write_comparison([a, b], tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert (tmp_path / "out" / "seed0" / "report.md").is_file()
    assert (tmp_path / "out" / "seed1" / "report.md").is_file()
    assert "| seed0 | tiny / arith / auto / step-dpo | 0 | M2 | 50.0 [15.0, 85.0] |" in text
    # mean of the two runs' last gains over M1: +25 and +50 points
    assert "- `tiny / arith / auto / step-dpo`: 2 run(s), mean +37.5 points, sd 17.7" in text
    with pytest.raises(ReportError, match="distinct names"):
        write_comparison([a, a], tmp_path / "dup")


def test_the_setting_names_task_options_and_judge(tmp_path: Path) -> None:
    cfg = RunConfig(model="tiny", task_options={"n_ops": 3}, judge={"mode": "paraphrase"})
    store = RunStore.create(tmp_path / "hard.duckdb", cfg)
    store.append_rows("iterations", [{"iteration": 1, "model_name": "M1"}])
    store.append_rows("evals", [{"iteration": 1, "mode": "greedy", "problem_id": "p0", "correct": True}])
    store.flush()
    text = write_comparison([store.path], tmp_path / "out").read_text(encoding="utf-8")
    assert "| hard | tiny / arith n_ops=3 / paraphrase / step-dpo | 0 | M1 |" in text


def test_cli_report_with_several_run_files(tmp_path: Path) -> None:
    a = _run(tmp_path / "x.duckdb", 0, [True, False], [True, True])
    b = _run(tmp_path / "y.duckdb", 1, [False, False], [True, False])
    out = tmp_path / "cmp"
    result = subprocess.run(
        [sys.executable, "-m", "presrm.cli", "report", str(a), str(b), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out / "comparison.md")
