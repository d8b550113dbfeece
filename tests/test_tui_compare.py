"""The inspector's compare tab, driven with Pilot on real run files: the problems two models
disagree on (counted from the nodes table independently), the problems table's filters, the two
trees of one problem side by side, a live run's new iteration, and two run files."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from test_tui import SIZE, flat, rendered, settle, sql, table_column
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Select, Static
from tui_fixtures import build_run_db

from presrm.store.writer import RunStore
from presrm.tui.app import InspectorApp
from presrm.tui.screens.pair import PairScreen
from presrm.tui.widgets.compare import ComparePane
from presrm.tui.widgets.reasoning_tree import ReasoningTree

_OUTCOMES = """
SELECT problem_id, any_value(tree_id),
       coalesce(bool_or(correct) FILTER (WHERE chosen AND NOT rolled_back AND is_final), false)
FROM nodes WHERE phase = 'greedy' AND iteration = ? GROUP BY problem_id
"""


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run_db(tmp_path_factory.mktemp("cmp") / "run.duckdb", n_problems=8, iterations=3, seed=0)


@pytest.fixture
def run_db(base_db: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(base_db, tmp_path / "run.duckdb"))


def outcomes(path: Path, iteration: int) -> dict[str, tuple[int, bool]]:
    return {p: (t, ok) for p, t, ok in sql(path, _OUTCOMES, [iteration])}


def flips(a: dict[str, tuple[int, bool]], b: dict[str, tuple[int, bool]]) -> tuple[list[str], list[str]]:
    """(wrong → right, right → wrong) problem ids."""
    fixed = sorted(p for p in a if p in b and not a[p][1] and b[p][1])
    broken = sorted(p for p in a if p in b and a[p][1] and not b[p][1])
    return fixed, broken


def run_app(app: InspectorApp, scenario: object) -> None:
    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await scenario(app, pilot)  # type: ignore[operator]

    asyncio.run(main())


async def choose(pilot: Pilot, selector: str, value: object) -> None:
    pilot.app.screen.query_one(selector, Select).value = value
    await settle(pilot)


def test_flipped_problems_across_two_iterations_and_a_pair_of_trees(run_db: Path) -> None:
    m0, m2 = outcomes(run_db, 0), outcomes(run_db, 2)
    fixed, broken = flips(m0, m2)
    assert fixed or broken, "the fixture's models must disagree somewhere"

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        pane = app.screen.query_one(ComparePane)
        assert (pane.query_state.a, pane.query_state.b) == (1, 2)  # the last iteration's change
        await choose(pilot, "#compare-a", 0)
        table = app.screen.query_one("#compare-table", DataTable)
        assert table_column(table, "problem_id") == broken + fixed  # right → wrong listed first
        summary = flat(rendered(app.screen.query_one("#compare-summary", Static)))
        assert f"M0 → M2 on {len(m0)} greedy problems" in summary
        assert f"{len(fixed)} wrong → right · {len(broken)} right → wrong" in summary
        diff = 100 * (len(fixed) - len(broken)) / len(m0)
        assert f"accuracy B − A {diff:+.1f} points" in summary

        await choose(pilot, "#compare-kind", "all")
        every = table_column(table, "problem_id")
        assert sorted(every) == sorted(m0)
        pane.set_query(limit=3)  # pages of 3: "]" shows the next one
        await settle(pilot)
        table.focus()
        await pilot.press("right_square_bracket")
        await settle(pilot)
        assert table_column(table, "problem_id") == every[3:6]
        pane.set_query(limit=200)
        await settle(pilot)
        # filtered like the problems table: the search keeps the pairs with a matching tree
        target = (fixed + broken)[0]
        app.screen.query_one("#compare-search", Input).value = target
        await pilot.pause(0.3)  # the search box's debounce
        await settle(pilot)
        assert table_column(table, "problem_id") == [target]

        table.focus()
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, PairScreen)
        trees = [app.screen.query_one(f"#pair-{s}", ReasoningTree) for s in "ab"]
        assert [t.detail.tree_id for t in trees if t.detail] == [m0[target][0], m2[target][0]]
        title_a = flat(rendered(app.screen.query_one("#pair-a-title", Static)))
        title_b = flat(rendered(app.screen.query_one("#pair-b-title", Static)))
        assert title_a.startswith(f"M0 · tree {m0[target][0]}") and title_b.startswith(
            f"M2 · tree {m2[target][0]}"
        )
        assert ("✓" in title_b) == m2[target][1] and ("✓" in title_a) == m0[target][1]
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, PairScreen)

    run_app(InspectorApp(run_db, refresh_interval=None), scenario)


def test_a_live_runs_new_iteration_becomes_side_b(run_db: Path) -> None:
    m2 = outcomes(run_db, 2)
    problem = next(p for p, (_, ok) in sorted(m2.items()) if not ok)

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        generation = app.generation
        store = RunStore.open(run_db)  # the run's M3 solves one held-out problem M2 got wrong
        tree_id, node_id = store.new_ids("tree", 1)[0], store.new_ids("node", 1)[0]
        node = {"iteration": 3, "phase": "greedy", "problem_id": problem, "tree_id": tree_id}
        node |= {"node_id": node_id, "depth": 1, "expansion": 1, "text": "Step 1: the answer is 1"}
        node |= {"chosen": True, "rolled_back": False, "is_final": True, "final_answer": "1", "correct": True}
        store.append_rows("nodes", [node])
        await asyncio.get_running_loop().run_in_executor(None, store.flush)
        for _ in range(100):
            if app.generation > generation:
                break
            await pilot.pause(0.05)
        await settle(pilot)
        pane = app.screen.query_one(ComparePane)
        assert (pane.query_state.a, pane.query_state.b) == (2, 3)
        assert table_column(app.screen.query_one("#compare-table", DataTable), "problem_id") == [problem]

    run_app(InspectorApp(run_db, refresh_interval=0.1), scenario)


def test_two_run_files_over_the_same_problems(run_db: Path, tmp_path: Path) -> None:
    other = Path(shutil.copy(run_db, tmp_path / "other.duckdb"))
    fixed, broken = flips(outcomes(run_db, 0), outcomes(other, 2))

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("4")
        await settle(pilot)
        await choose(pilot, "#compare-a", 0)
        await choose(pilot, "#compare-b", 2)
        table = app.screen.query_one("#compare-table", DataTable)
        assert table_column(table, "problem_id") == broken + fixed
        assert "run:M0 → other:M2" in flat(rendered(app.screen.query_one("#compare-summary", Static)))

    run_app(InspectorApp(run_db, refresh_interval=None, compare_file=other), scenario)
