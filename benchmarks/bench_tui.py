"""Benchmark of ``presrm inspect`` on a large run: time to first screen and to open a tree.

    python benchmarks/bench_tui.py                 # ~1,000,000 nodes (built once, cached)
    python benchmarks/bench_tui.py --nodes 200000 --db /tmp/bench.duckdb

Builds a simulated run (tests/tui_fixtures.py, batched RunStore appends) with about
``--nodes`` candidate steps, then measures, in the same process and run:

* the DuckDB queries alone (baseline): what the first screen reads (run row, counts,
  stored eval_metrics), the problems table's per-tree aggregation, and one tree with
  its judge calls;
* the headless Textual app doing the same: from constructing the app to the overview
  table being filled (first screen), to the problems table being filled, and from
  asking for a tree to the tree being drawn.

Prints each app time next to its queries-alone time and the ratio, as wall-clock
seconds and as this process's CPU seconds (all threads): on a shared machine other
processes stretch wall time, CPU time is the work the inspector itself did. The
machine's speed varies, so compare ratios measured in one run. Targets (wall, issue 16):
first screen < 1 s, tree < 100 ms ("open a tree" is the first open, which builds
the tree screen; "reopen" is a later one, which reuses it; both cold, with nothing
read ahead. "open from table" / "reopen from table" are the user's path: the cursor
rests on a row of the problems table, the inspector reads that tree ahead, and Enter
opens it; their baseline is the cold open's query).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import DataTable  # noqa: E402
from textual.worker import WorkerState  # noqa: E402
from tui_fixtures import build_run_db  # noqa: E402

from presrm import inspect as Q  # noqa: E402
from presrm.tui.app import InspectorApp  # noqa: E402
from presrm.tui.screens.tree import TreeScreen  # noqa: E402
from presrm.tui.widgets.problems import ProblemsPane  # noqa: E402

NODES_PER_PROBLEM = 62  # measured for the fixture's defaults with 3 iterations
FIRST_SCREEN_TARGET = 1.0
TREE_TARGET = 0.1
QUERY_OF = {"open from table": "open a tree", "reopen from table": "reopen"}
"""The queries-alone baseline of each app timing that has no query of its own."""


def build(path: Path, nodes: int) -> float:
    n_problems = max(8, nodes // NODES_PER_PROBLEM + 1)
    start = time.perf_counter()
    build_run_db(path, n_problems=n_problems, iterations=3, seed=0, eft_pairs=200, flush_every=2000)
    return time.perf_counter() - start


Timing = tuple[float, float]  # (wall seconds, process CPU seconds)


class Clock:
    """Wall and process CPU time since construction."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self) -> Timing:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def timed(fn: Callable[[], object]) -> Timing:
    clock = Clock()
    fn()
    return clock.read()


def queries_alone(path: Path, tree_id: int, other_tree: int) -> dict[str, Timing]:
    """The reads behind each screen, without the UI."""

    def first_screen() -> None:
        Q.run_info(path)
        Q.iteration_summaries(path, None, compute_missing=False)

    def problems() -> None:
        index = Q.TreeIndex(path)
        index.refresh()
        Q.select_trees(index.table, Q.TreeQuery(limit=200))

    return {
        "first screen": timed(first_screen),
        "problems table": timed(problems),
        "open a tree": timed(lambda: Q.load_tree(path, tree_id)),
        "reopen": timed(lambda: Q.load_tree(path, other_tree)),
    }


async def _wait(pilot: Pilot, condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app did not get there in time")
        await pilot.pause(0.002)


async def app_times(path: Path, tree_id: int, other_tree: int) -> dict[str, Timing]:
    start = Clock()
    app = InspectorApp(path, refresh_interval=None)
    out: dict[str, Timing] = {}
    async with app.run_test(size=(150, 45)) as pilot:

        def rows(selector: str) -> int:
            found = app.screen.query(selector)
            return found.first(DataTable).row_count if found else 0

        await _wait(pilot, lambda: rows("#iterations") > 0)
        await _drawn(pilot)
        out["first screen"] = start.read()
        await _wait(pilot, lambda: rows("#problems-table") > 0)
        await _drawn(pilot)
        out["problems table"] = start.read()
        await _idle(pilot)

        def tree_drawn(tree: int) -> Callable[[], bool]:
            def shown() -> bool:
                screen = app.screen
                return isinstance(screen, TreeScreen) and screen.detail is not None and screen.tree_id == tree

            return shown

        for key, tree in (("open a tree", tree_id), ("reopen", other_tree)):
            app._prefetched = None  # cold: nothing read ahead for this tree
            clock = Clock()
            app.open_tree(tree)
            await _wait(pilot, tree_drawn(tree))
            await _drawn(pilot)
            out[key] = clock.read()
            app.pop_screen()
            await _idle(pilot)
        # The user's path: the cursor rests on a row of the problems table (largest trees first),
        # the tree under it is read ahead, then Enter opens it.
        app.show_tab("problems")
        pane = app.screen.query_one(ProblemsPane)
        pane.set_query(sort="n_nodes", descending=True)
        table = app.screen.query_one("#problems-table", DataTable)
        await _idle(pilot)
        for key, row in (("open from table", 0), ("reopen from table", 1)):
            table.move_cursor(row=row, animate=False)
            await pilot.pause(0.2)  # the user's reaction time before Enter
            await _idle(pilot)
            tree = int(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or 0)
            clock = Clock()
            table.action_select_cursor()  # what Enter does
            await _wait(pilot, tree_drawn(tree))
            await _drawn(pilot)
            out[key] = clock.read()
            app.pop_screen()
            await _idle(pilot)
    return out


async def _drawn(pilot: Pilot) -> None:
    """Let the screen handle what is queued, then render it: the frame is on screen.

    (``pilot.pause()`` waits instead until the whole process is idle, up to a second: with the
    tree index still loading in a worker thread it counted that load, not the frame.)
    """
    await pilot._wait_for_screen()
    pilot.app.screen._on_timer_update()


# A user's start: a fresh interpreter imports the inspector, builds the app and draws the
# overview (module imports and first uses, e.g. pyarrow importing pandas, are paid here, not
# in the in-process timings above, whose imports this script did before them).
COLD_START = """
import asyncio, sys, time
t0 = time.perf_counter()
from textual.widgets import DataTable
from presrm.tui.app import InspectorApp
t1 = time.perf_counter()
async def main():
    app = InspectorApp(sys.argv[1], refresh_interval=None)
    async with app.run_test(size=(150, 45)) as pilot:
        def ready():
            found = app.screen.query("#iterations")
            return bool(found) and found.first(DataTable).row_count > 0
        while not ready():
            await pilot.pause(0.002)
        await pilot._wait_for_screen()
        app.screen._on_timer_update()
        print("COLD", t1 - t0, time.perf_counter() - t0)
asyncio.run(main())
"""


def cold_start(path: Path, repeat: int) -> tuple[float, float]:
    """Median (imports, imports to first screen drawn) seconds over fresh interpreters."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    runs = []
    for _ in range(repeat):
        done = subprocess.run(
            [sys.executable, "-c", COLD_START, str(path)], capture_output=True, text=True, env=env, check=True
        )
        line = next(x for x in done.stdout.splitlines() if x.startswith("COLD "))
        imports, first = (float(x) for x in line.split()[1:])
        runs.append((imports, first))
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


async def _idle(pilot: Pilot) -> None:
    app = pilot.app
    while any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
        await pilot.pause(0.01)
    await pilot.pause()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=1_000_000, help="approximate number of nodes")
    parser.add_argument("--db", type=Path, default=None, help="run file to use (built when missing)")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (median reported)")
    args = parser.parse_args(argv)
    path = args.db or Path(tempfile.gettempdir()) / f"presrm-bench-tui-{args.nodes}.duckdb"
    if not path.exists():
        print(f"building {path} (~{args.nodes:,} nodes) ...", flush=True)
        print(f"  built in {build(path, args.nodes):.1f} s", flush=True)
    version = Q.data_version(path)
    trees = Q.tree_summaries(path)
    train = trees.filter(trees.column("phase").to_numpy(zero_copy_only=False) == "train")
    sizes = train.column("n_nodes").to_pylist()
    ids = train.column("tree_id").to_pylist()
    order = sorted(range(len(ids)), key=lambda k: (-sizes[k], ids[k]))
    tree_id, other_tree = int(ids[order[0]]), int(ids[order[1]])
    print(
        f"run: {version.nodes:,} nodes, {version.judgments:,} judgments, {trees.num_rows:,} trees;"
        f" trees {tree_id} and {other_tree}: {sizes[order[0]]} and {sizes[order[1]]} nodes (largest)"
    )
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")

    base = [queries_alone(path, tree_id, other_tree) for _ in range(args.repeat)]
    ui = [asyncio.run(app_times(path, tree_id, other_tree)) for _ in range(args.repeat)]
    targets = {
        "first screen": FIRST_SCREEN_TARGET,
        "open a tree": TREE_TARGET,
        "reopen": TREE_TARGET,
        "open from table": TREE_TARGET,
        "reopen from table": TREE_TARGET,
    }
    print(
        f"\nmedian of {args.repeat}     wall: app  queries  ratio  |  cpu: app  queries  ratio  | target (wall)"
    )
    ok = True
    for key in (
        "first screen",
        "problems table",
        "open a tree",
        "reopen",
        "open from table",
        "reopen from table",
    ):
        app_w = statistics.median(r[key][0] for r in ui)
        app_c = statistics.median(r[key][1] for r in ui)
        q_key = QUERY_OF.get(key, key)
        q_w = statistics.median(r[q_key][0] for r in base)
        q_c = statistics.median(r[q_key][1] for r in base)
        target = targets.get(key)
        verdict = ""
        if target is not None:
            passed = app_w < target
            ok &= passed
            verdict = f"< {target:g} s {'PASS' if passed else 'FAIL'}"
        print(
            f"{key:16} {app_w:9.3f}s {q_w:7.3f}s {app_w / q_w:5.1f}x  | {app_c:8.3f}s {q_c:7.3f}s"
            f" {app_c / max(q_c, 1e-6):5.1f}x  | {verdict}"
        )
    imports, cold = cold_start(path, args.repeat)
    print(
        f"\nfresh process (median of {args.repeat}): imports {imports:.3f} s, imports to first screen"
        f" {cold:.3f} s, so the app's part {cold - imports:.3f} s (queries alone above)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
