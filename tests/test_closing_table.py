"""The table `presrm run` ends with, on a run that evaluated its search as well as greedy decoding."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from tui_fixtures import build_run_db

from presrm.eval.closing import closing_table
from presrm.store.reader import query_rows


def test_a_searched_run_gets_a_search_column_with_its_gain_over_greedy(tmp_path: Path) -> None:
    path = build_run_db(tmp_path / "run.duckdb", n_problems=6, iterations=3)
    table = closing_table(path)
    assert table is not None
    assert [c.header for c in table.columns] == ["model", "held-out", "search, held-out; − greedy"]
    out = Console(width=200, record=True)
    out.print(table)
    rows = {line.split("│")[1].strip(): line for line in out.export_text().splitlines() if "│ M" in line}
    assert set(rows) == {"M0", "M1", "M2"}
    # Each search cell: accuracy [low, high], then search - greedy with its interval, as stored.
    for iteration in range(3):
        metrics = dict(
            query_rows(path, "SELECT metric, value FROM eval_metrics WHERE iteration = ?", [iteration])
        )
        search_cell = rows[f"M{iteration}"].split("│")[3].strip()
        acc, low, high = (
            100 * metrics[k] for k in ("accuracy_search", "accuracy_search_low", "accuracy_search_high")
        )
        assert search_cell.startswith(f"{acc:.1f} [{low:.1f}, {high:.1f}]")
        gain = 100 * metrics["search_gain"]
        assert f"{gain:+.1f} [" in search_cell


def test_levels_are_columns_in_numeric_order_whatever_the_set_order() -> None:
    from presrm.eval.closing import _columns

    no_level = {"task_options": {}, "curriculum": {"levels": [2, 3]}}
    taught_4 = {"task_options": {"n_ops": 4}, "curriculum": {"levels": [4]}}
    for suffixes in ([":n_ops=10", ":n_ops=3", ":n_ops=1"], [":n_ops=1", ":n_ops=3", ":n_ops=10"]):
        titles = [title for _, title in _columns(no_level, set(suffixes))]
        assert titles == ["held-out", "n_ops=1", "n_ops=3 taught", "n_ops=10"]
        titles = [title for _, title in _columns(taught_4, set(suffixes))]
        assert titles == ["n_ops=1", "n_ops=3", "n_ops=4 taught", "n_ops=10"]
