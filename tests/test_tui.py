"""The inspector driven headless with Pilot, on real run files (tests/tui_fixtures.py).

Every test waits for the app's thread workers instead of sleeping, and checks what
the widgets actually render (or the rows in the run file), not internal state only.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import DataTable, Input, Static
from textual.worker import WorkerCancelled, WorkerState
from tui_fixtures import MARKUP_RAW, MARKUP_STEP, build_empty_run, build_run_db

from presrm import inspect as Q
from presrm.store.writer import RunStore
from presrm.tui import app as app_module
from presrm.tui.app import PREFETCH_DELAY, InspectorApp
from presrm.tui.screens.error import ErrorScreen
from presrm.tui.screens.flag import FlagDialog
from presrm.tui.screens.help import HelpScreen
from presrm.tui.screens.tree import TreeScreen
from presrm.tui.widgets.problems import ProblemsPane
from presrm.tui.widgets.reasoning_tree import ReasoningTree

SIZE = (150, 45)


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run_db(tmp_path_factory.mktemp("tui") / "run.duckdb", n_problems=8, iterations=3, seed=0)


@pytest.fixture
def run_db(base_db: Path, tmp_path: Path) -> Path:
    return Path(shutil.copy(base_db, tmp_path / "run.duckdb"))


def sql(path: Path, query: str, params: list[Any] | None = None) -> list[tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(query, params or []).fetchall()
    finally:
        con.close()


def rendered(widget: Widget) -> str:
    """What the widget draws on screen, as text."""
    strips = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "\n".join("".join(seg.text for seg in strip).rstrip() for strip in strips)


def flat(text: str) -> str:
    """Whitespace-insensitive form (the screen wraps long lines)."""
    return " ".join(text.split())


def table_column(table: DataTable, key: str) -> list[str]:
    return [str(table.get_cell(row, key)) for row in table.rows]


async def settle(pilot: Pilot) -> None:
    """Wait until no worker runs and the messages they posted were handled."""
    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        with contextlib.suppress(WorkerCancelled):  # an exclusive worker replaced by a newer one
            await app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            await pilot.pause()
            return
    raise AssertionError("workers never settled")


def run(
    path: Path, scenario: Callable[[InspectorApp, Pilot], Awaitable[None]], **kwargs: Any
) -> InspectorApp:
    async def main() -> InspectorApp:
        app = InspectorApp(path, refresh_interval=kwargs.pop("refresh_interval", None))
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await scenario(app, pilot)
        return app

    return asyncio.run(main())


async def open_markup_tree(app: InspectorApp, pilot: Pilot, path: Path) -> tuple[int, int]:
    """Open the fixture's markup tree from the problems table (search + enter); returns (tree, node)."""
    tree_id, node_id = sql(path, "SELECT tree_id, node_id FROM nodes WHERE text = ?", [MARKUP_STEP])[0]
    await pilot.press("2")
    await settle(pilot)
    await pilot.press("slash")
    await pilot.press(*"frac{a}[b]", "enter")
    await settle(pilot)
    table = app.screen.query_one("#problems-table", DataTable)
    assert table_column(table, "tree_id") == [str(tree_id)]
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, TreeScreen) and app.screen.tree_id == tree_id
    return tree_id, node_id


# ---- overview -------------------------------------------------------------------------------


def test_overview_shows_iterations_with_stored_and_computed_metrics(run_db: Path) -> None:
    summaries = Q.iteration_summaries(run_db, Q.tree_summaries(run_db))

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        table = app.screen.query_one("#iterations", DataTable)
        assert table_column(table, "model") == ["M0", "M1", "M2"]
        # stored accuracies come with their stored 95 % interval
        want = [
            f"{100 * (s.metrics['accuracy_search'] or 0):.1f}%"
            f" [{100 * s.extra['accuracy_search_low']:.1f}, {100 * s.extra['accuracy_search_high']:.1f}]"
            for s in summaries
        ]
        assert table_column(table, "accuracy_search") == want
        last = summaries[-1]
        assert "judge_accuracy" in last.computed
        cell = table.get_cell("2", "judge_accuracy")
        assert str(cell) == f"{100 * (last.metrics['judge_accuracy'] or 0):.1f}%"
        assert "italic" in str(cell.style)  # computed values are marked
        assert "italic" not in str(table.get_cell("0", "judge_accuracy").style)
        info = rendered(app.screen.query_one("#run-info", Static))
        assert "fixture-run-0" in info and "run.duckdb" in info

    run(run_db, scenario)


# ---- problems table -------------------------------------------------------------------------


def test_problems_presets_sort_and_search(run_db: Path) -> None:
    trees = Q.tree_summaries(run_db)

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#problems-table", DataTable)
        assert table.row_count == trees.num_rows
        await pilot.press("p")  # next preset: wrong answer but high self-score
        await settle(pilot)
        want = Q.select_trees(trees, Q.TreeQuery(preset="confident_wrong", limit=10_000))
        assert 0 < want.total < trees.num_rows
        assert table_column(table, "tree_id") == [str(t) for t in want.rows.column("tree_id").to_pylist()]
        assert all(str(c) == "✗" for c in table_column(table, "correct"))
        status = rendered(app.screen.query_one("#problems-status", Static))
        assert f"of {want.total}" in status and "wrong answer but high self-score" in status
        # sort by clicking a header: min score, descending
        columns = list(table.columns.values())
        index = [c.key.value for c in columns].index("min_score")
        x = sum(c.get_render_width(table) for c in columns[:index]) + 1
        await pilot.click("#problems-table", offset=(x, 0))
        await settle(pilot)
        assert app.screen.query_one(ProblemsPane).query_state.sort == "min_score"
        scores = [float(s) for s in table_column(table, "min_score")]
        assert scores == sorted(scores, reverse=True)
        # the command palette applies a preset too
        app.apply_preset("checker")
        await settle(pilot)
        want = Q.select_trees(
            trees, Q.TreeQuery(preset="checker", sort="min_score", descending=True, limit=10_000)
        )
        assert table_column(table, "tree_id") == [str(t) for t in want.rows.column("tree_id").to_pylist()]
        # search, literally
        app.apply_preset("all")
        await pilot.press("slash")
        await pilot.press(*"train-00003", "enter")
        await settle(pilot)
        assert set(table_column(table, "problem_id")) == {"train-00003"}
        assert app.focused is table

    run(run_db, scenario)


def test_pages(tmp_path: Path) -> None:
    path = build_run_db(tmp_path / "big.duckdb", n_problems=80, iterations=2, seed=3, eft_pairs=2)
    total = Q.tree_summaries(path).num_rows
    assert total > 200

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#problems-table", DataTable)
        first_id = table_column(table, "tree_id")[0]
        seen: list[str] = []
        for offset in range(0, total, 200):
            shown = min(200, total - offset)
            assert table.row_count == shown
            status = rendered(app.screen.query_one("#problems-status", Static))
            assert f"trees {offset + 1}–{offset + shown} of {total}" in status
            seen += table_column(table, "tree_id")
            await pilot.press("right_square_bracket")
            await settle(pilot)
        assert table.row_count == total - 200 * ((total - 1) // 200)  # no page after the last
        assert len(seen) == len(set(seen)) == total
        await pilot.press("left_square_bracket")
        await settle(pilot)
        assert table.row_count == 200
        for _ in range(total // 200 + 1):
            await pilot.press("left_square_bracket")
        await settle(pilot)
        assert table_column(table, "tree_id")[0] == first_id

    run(path, scenario)


# ---- tree, markup, navigation, flags ----------------------------------------------------------


def test_tree_shows_model_text_verbatim_and_navigates(run_db: Path) -> None:
    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        tree_id, node_id = await open_markup_tree(app, pilot, run_db)
        tree = app.screen.query_one(ReasoningTree)
        assert MARKUP_STEP in rendered(tree)
        # keyboard: walk to the markup step (a first step) from the cursor's start
        start = tree.cursor_node.data.node_id if tree.cursor_node and tree.cursor_node.data else None
        assert start is not None
        await pilot.press("home")
        for _ in range(200):
            if (
                tree.cursor_node is not None
                and tree.cursor_node.data
                and tree.cursor_node.data.node_id == node_id
            ):
                break
            await pilot.press("down")
        assert tree.cursor_node is not None and tree.cursor_node.data is not None
        assert tree.cursor_node.data.node_id == node_id
        await settle(pilot)
        info = rendered(app.screen.query_one("#node-info", Static))
        assert flat(MARKUP_STEP) in flat(info)
        calls = app.screen.query_one("#judgments", DataTable)
        assert calls.row_count == len(
            sql(run_db, "SELECT 1 FROM judgments WHERE ? IN (node_a, node_b)", [node_id])
        )
        assert flat(MARKUP_RAW) in flat(rendered(app.screen.query_one("#judgment-info", Static)))
        # the other order of the same pair is one row down; its raw output shows too
        await pilot.press("tab")
        assert app.focused is calls
        await pilot.press("down")
        await settle(pilot)
        second = calls.get_row_at(1)
        assert str(second[1]) == "1"  # order 1
        raw = sql(run_db, "SELECT raw_output FROM judgments WHERE judgment_id = ?", [int(str(second[0]))])[0][
            0
        ]
        assert flat(raw) in flat(rendered(app.screen.query_one("#judgment-info", Static)))
        # c: chosen path only; escape returns to the table
        await pilot.press("shift+tab", "c")
        await settle(pilot)
        path = [n.node_id for n in Q.load_tree(run_db, tree_id).chosen_path()]
        assert tree.cursor_node is not None and tree.cursor_node.data is not None
        assert tree.cursor_node.data.node_id == path[-1]
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, TreeScreen)

    run(run_db, scenario)


class CountingLoads:
    """Wraps the app's tree reader: counts reads per tree, optionally slowed down."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self._load = app_module.load_tree

    def __call__(self, path: Path, tree_id: int) -> Q.TreeDetail:
        self.calls.append(tree_id)
        if self.delay:
            time.sleep(self.delay)  # runs in the worker thread
        return self._load(path, tree_id)


def cursor_tree(table: DataTable) -> int:
    return int(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))


async def wait_for_read(pilot: Pilot, done: Callable[[], bool]) -> None:
    """Pause until ``done()``; a read-ahead starts PREFETCH_DELAY after the cursor stops (bounded)."""
    for _ in range(500):
        if done():
            return
        await pilot.pause(PREFETCH_DELAY / 5)


async def rest_on_row(pilot: Pilot, loads: CountingLoads, *keys: str) -> tuple[int, int]:
    """Open the problems table, move its cursor and let it rest there until its tree has been read
    ahead or is being read (an earlier screen may have read it already); returns (that tree, how
    often it has been read). Reads are counted per tree: the read-ahead of a row the cursor passed
    can be cancelled and still finish later (a thread runs to its end)."""
    await pilot.press("2")
    await settle(pilot)
    table = pilot.app.screen.query_one("#problems-table", DataTable)
    await pilot.press(*keys)
    await wait_for_read(pilot, lambda: cursor_tree(table) in loads.calls)
    tree_id = cursor_tree(table)
    assert tree_id in loads.calls, (tree_id, loads.calls)
    return tree_id, loads.calls.count(tree_id)


def test_the_tree_under_the_cursor_is_read_ahead_and_never_shown_stale(
    run_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = CountingLoads()
    monkeypatch.setattr(app_module, "load_tree", loads)

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        tree_id, _ = await rest_on_row(pilot, loads, "down", "down")
        await settle(pilot)
        reads = loads.calls.count(tree_id)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TreeScreen) and app.screen.tree_id == tree_id
        assert loads.calls.count(tree_id) == reads  # opened from the read-ahead copy: no second read
        question = Q.load_tree(run_db, tree_id).question
        assert flat(question) in flat(rendered(app.screen.query_one("#tree-title", Static)))
        await pilot.press("escape")
        await settle(pilot)
        # The run grows this tree: the copy read before is stale and must not be shown.
        detail = Q.load_tree(run_db, tree_id)
        last = detail.nodes[-1]
        generation = app.generation
        store = RunStore.open(run_db)
        store.append_rows(
            "nodes",
            [
                {
                    "iteration": detail.iteration,
                    "phase": detail.phase,
                    "problem_id": detail.problem_id,
                    "tree_id": tree_id,
                    "node_id": store.new_ids("node", 1)[0],
                    "parent_id": last.parent_id,
                    "depth": last.depth,
                    "expansion": 1,
                    "text": "Step 9: written after the read-ahead",
                    "rolled_back": False,
                }
            ],
        )
        await asyncio.get_running_loop().run_in_executor(None, store.flush)
        app.refresh_run()
        for _ in range(100):
            if app.generation > generation:
                break
            await pilot.pause(0.05)
        await settle(pilot)
        assert app.generation > generation
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TreeScreen) and app.screen.tree_id == tree_id
        assert "written after the read-ahead" in rendered(app.screen.query_one(ReasoningTree))

    run(run_db, scenario)


def test_a_read_of_a_row_the_cursor_left_keeps_the_copy_of_the_row_it_came_back_to(
    run_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = CountingLoads(delay=0.5)
    monkeypatch.setattr(app_module, "load_tree", loads)

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        tree_id, _ = await rest_on_row(pilot, loads, "down")
        await settle(pilot)  # its copy is in
        table = app.screen.query_one("#problems-table", DataTable)
        before = len(loads.calls)
        await pilot.press("down")
        await wait_for_read(pilot, lambda: bool(loads.calls[before:]))  # under way; it takes 0.5 s
        assert loads.calls[before:] == [cursor_tree(table)] and cursor_tree(table) != tree_id
        await pilot.press("up")  # back while the other row is still being read
        await settle(pilot)
        reads = loads.calls.count(tree_id)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TreeScreen) and app.screen.tree_id == tree_id
        assert loads.calls.count(tree_id) == reads  # the later read did not replace its copy

    run(run_db, scenario)


def test_enter_while_the_tree_is_read_ahead_waits_for_it(
    run_db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loads = CountingLoads(delay=0.5)
    monkeypatch.setattr(app_module, "load_tree", loads)

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        tree_id, reads = await rest_on_row(pilot, loads, "down")  # the read-ahead started, still reading
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TreeScreen) and app.screen.tree_id == tree_id
        assert loads.calls.count(tree_id) == reads  # the open waited for the read in flight

    run(run_db, scenario)


def test_flag_a_step_with_a_note_then_unflag(run_db: Path) -> None:
    note = "[red]wrong[/] {0} \\frac{a}[b]"

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        tree_id, _ = await open_markup_tree(app, pilot, run_db)
        tree = app.screen.query_one(ReasoningTree)
        assert tree.cursor_node is not None and tree.cursor_node.data is not None
        node_id = tree.cursor_node.data.node_id
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FlagDialog)
        await pilot.press(*note)
        assert app.screen.query_one("#flag-note", Input).value == note
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, TreeScreen)
        stored = sql(run_db, "SELECT target, target_id, note, original_verdict FROM flags")
        assert stored == [("node", node_id, note, "chosen")]
        assert "⚑1" in rendered(tree)
        assert flat(note) in flat(rendered(app.screen.query_one("#node-flags", Static)))
        # the problems table counts it and the flagged preset finds the tree
        await pilot.press("escape")
        await settle(pilot)
        app.apply_preset("flagged")
        await settle(pilot)
        table = app.screen.query_one("#problems-table", DataTable)
        assert table_column(table, "tree_id") == [str(tree_id)]
        assert table_column(table, "n_flags") == ["⚑"]
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("u")
        await settle(pilot)
        assert sql(run_db, "SELECT * FROM flags") == []
        assert "⚑" not in rendered(app.screen.query_one(ReasoningTree))

    run(run_db, scenario)


def test_flag_a_judgment_with_the_corrected_verdict(run_db: Path) -> None:
    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await open_markup_tree(app, pilot, run_db)
        await pilot.press("tab")
        calls = app.screen.query_one("#judgments", DataTable)
        assert app.focused is calls
        judgment_id = int(str(calls.get_row_at(calls.cursor_row)[0]))
        verdict = sql(run_db, "SELECT verdict FROM judgments WHERE judgment_id = ?", [judgment_id])[0][0]
        assert verdict in ("A", "B")
        await pilot.press("f")
        await settle(pilot)
        assert isinstance(app.screen, FlagDialog)
        await pilot.press("enter")  # empty note, default correction
        await settle(pilot)
        stored = sql(run_db, "SELECT target, target_id, note, original_verdict, corrected_verdict FROM flags")
        assert stored == [("judgment", judgment_id, "", verdict, "B" if verdict == "A" else "A")]
        assert "⚑" in str(calls.get_row_at(calls.cursor_row)[-1])
        # escape in the dialog cancels without writing
        await pilot.press("f")
        await settle(pilot)
        await pilot.press("escape")
        await settle(pilot)
        assert len(sql(run_db, "SELECT * FROM flags")) == 1
        await pilot.press("u")
        await settle(pilot)
        assert sql(run_db, "SELECT * FROM flags") == []

    run(run_db, scenario)


# ---- calibration ------------------------------------------------------------------------------


def test_calibration_view_opens_trees(run_db: Path) -> None:
    cal = Q.calibration(Q.tree_summaries(run_db), phase="eval")

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("3")
        await settle(pilot)
        rel = app.screen.query_one("#reliability", DataTable)
        assert [str(rel.get_row_at(i)[1]) for i in range(rel.row_count)] == [str(b.n) for b in cal.bins]
        summary = rendered(app.screen.query_one("#calib-summary", Static))
        assert f"{cal.n} finished solutions" in summary
        wrong = app.screen.query_one("#confident-wrong", DataTable)
        assert [str(wrong.get_row_at(i)[0]) for i in range(wrong.row_count)] == [
            str(t.tree_id) for t in cal.confident_wrong
        ]
        assert app.focused is wrong
        await pilot.press("enter")  # one keystroke to the tree
        await settle(pilot)
        assert isinstance(app.screen, TreeScreen)
        assert app.screen.tree_id == cal.confident_wrong[0].tree_id

    run(run_db, scenario)


# ---- live runs --------------------------------------------------------------------------------


def test_live_refresh_picks_up_new_rows(run_db: Path) -> None:
    before = Q.tree_summaries(run_db).num_rows

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        table = app.screen.query_one("#problems-table", DataTable)
        assert table.row_count == before
        generation = app.generation
        # the run writes a new tree (its writer opens the file read-write, briefly)
        store = RunStore.open(run_db)
        tree_id = store.new_ids("tree", 1)[0]
        node_id = store.new_ids("node", 1)[0]
        store.append_rows(
            "nodes",
            [
                {
                    "iteration": 2,
                    "phase": "train",
                    "problem_id": "train-00001",
                    "tree_id": tree_id,
                    "node_id": node_id,
                    "depth": 1,
                    "expansion": 1,
                    "text": "Step 1: a live step",
                    "chosen": True,
                    "rolled_back": False,
                }
            ],
        )
        await asyncio.get_running_loop().run_in_executor(None, store.flush)
        for _ in range(100):  # the 0.1 s timer notices; wait for it, bounded
            if app.generation > generation:
                break
            await pilot.pause(0.05)
        await settle(pilot)
        assert app.generation > generation
        assert table.row_count == before + 1
        assert str(tree_id) in table_column(table, "tree_id")

    run(run_db, scenario, refresh_interval=0.1)


WRITER = """
import sys, time
from presrm.store.writer import RunStore
path, n = sys.argv[1], int(sys.argv[2])
store = RunStore.open(path)
worst = 0.0
for k in range(n):
    tree_id = store.new_ids("tree", 1)[0]
    node_id = store.new_ids("node", 1)[0]
    store.append_rows("nodes", [{"iteration": 2, "phase": "train", "problem_id": "train-00002",
                                 "tree_id": tree_id, "node_id": node_id, "depth": 1, "expansion": 1,
                                 "text": f"Step 1: writer {k}", "chosen": True, "rolled_back": False}])
    start = time.monotonic()
    store.flush()
    worst = max(worst, time.monotonic() - start)
    time.sleep(0.05)
print(f"{worst:.3f}", flush=True)
"""


def test_a_writer_process_keeps_writing_while_the_app_polls(run_db: Path) -> None:
    """A real run writer in another process flushes while the app polls every 0.05 s."""
    before = Q.tree_summaries(run_db).num_rows
    n = 25

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("2")
        await settle(pilot)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WRITER, str(run_db), str(n), stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
        assert proc.returncode == 0
        worst_flush = float(out.decode().strip())
        assert worst_flush < 5.0  # the writer waited at most for one short read, never for the app
        table = app.screen.query_one("#problems-table", DataTable)
        for _ in range(200):  # bounded wait for the next poll to see the last flush
            await settle(pilot)
            if table.row_count == before + n:
                break
            await pilot.pause(0.05)
        assert table.row_count == before + n

    run(run_db, scenario, refresh_interval=0.05)


# ---- empty, missing, foreign ------------------------------------------------------------------


def test_empty_run(tmp_path: Path) -> None:
    path = build_empty_run(tmp_path / "empty.duckdb")

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        note = rendered(app.screen.query_one("#overview-note", Static))
        assert "no iterations recorded yet" in note
        await pilot.press("2")
        await settle(pilot)
        assert "no search trees in this run yet" in rendered(app.screen.query_one("#problems-status", Static))
        await pilot.press("3")
        await settle(pilot)
        assert "no finished solutions" in rendered(app.screen.query_one("#calib-summary", Static))

    run(path, scenario)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "run file not found"),
        (
            lambda p: duckdb.connect(str(p)).execute("CREATE TABLE t (x INT)").close(),
            "not a presrm run database",
        ),
        (lambda p: p.write_text("just text"), "cannot open as a DuckDB database"),
    ],
    ids=["missing", "other-duckdb", "not-duckdb"],
)
def test_unopenable_files_show_a_clear_message(
    tmp_path: Path, make: Callable[[Path], Any], message: str
) -> None:
    path = tmp_path / "thing.duckdb"
    make(path)

    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        assert isinstance(app.screen, ErrorScreen)
        text = flat(rendered(app.screen.query_one("#error-message", Static)))
        assert message in text and "thing.duckdb" in text
        await pilot.press("q")

    run(path, scenario)
    res = subprocess.run(
        [sys.executable, "-m", "presrm.tui", str(path)], capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert message in res.stderr and "Traceback" not in res.stderr


# ---- conventions -----------------------------------------------------------------------------


def test_help_palette_and_footer(run_db: Path) -> None:
    async def scenario(app: InspectorApp, pilot: Pilot) -> None:
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        assert "flag the step" in rendered(app.screen.query_one("#help-keys", Static))
        await pilot.press("escape")
        await settle(pilot)
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("ctrl+p")
        await settle(pilot)
        await pilot.press(*"flagged by")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert app.screen.query_one(ProblemsPane).query_state.preset == "flagged"
        footer = rendered(app.screen.query_one("KeyBar"))
        for label in ("Quit", "Help", "Reload", "Problems", "Search", "Preset", "palette"):
            assert label in footer
        # a click on a key runs its binding
        x = footer.index("Help") - 2
        await pilot.click("KeyBar", offset=(x, 0))
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)

    run(run_db, scenario)


# ---- snapshots ---------------------------------------------------------------------------------


def _snap_app(path: Path) -> InspectorApp:
    return InspectorApp(path, refresh_interval=None)


def test_snapshot_overview(base_db: Path, snap_compare: Any) -> None:
    assert snap_compare(_snap_app(base_db), terminal_size=SIZE, run_before=settle)


def test_snapshot_problems(base_db: Path, snap_compare: Any) -> None:
    async def before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(_snap_app(base_db), terminal_size=SIZE, run_before=before)


def test_snapshot_tree(base_db: Path, snap_compare: Any) -> None:
    async def before(pilot: Pilot) -> None:
        await settle(pilot)
        app = pilot.app
        assert isinstance(app, InspectorApp)
        tree_id = sql(base_db, "SELECT tree_id FROM nodes WHERE text = ?", [MARKUP_STEP])[0][0]
        app.open_tree(tree_id)
        await settle(pilot)

    assert snap_compare(_snap_app(base_db), terminal_size=SIZE, run_before=before)


def test_snapshot_calibration(base_db: Path, snap_compare: Any) -> None:
    async def before(pilot: Pilot) -> None:
        await settle(pilot)
        await pilot.press("3")
        await settle(pilot)

    assert snap_compare(_snap_app(base_db), terminal_size=SIZE, run_before=before)
