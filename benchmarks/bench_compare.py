"""Benchmark of the inspector's compare tab on a large run: time to its first table.

    python benchmarks/bench_compare.py              # the ~1,000,000-node run of bench_tui.py
    python benchmarks/bench_compare.py --nodes 200000

Measures, on the simulated run of bench_tui.py (built when missing, cached in the temp folder):

* queries alone (baseline): pairing M1's and M2's greedy trees with presrm.inspect.flips on the
  tree index already in memory;
* the app, index loaded: from the 4 key's tab switch to the compare table drawn (M1 → M2, flipped
  problems);
* the app from its start: constructing it, switching to the tab at once, to the compare table drawn
  (this includes the tree index's first load, which the problems table waits for too);
* opening the two trees of the table's first problem side by side.
Target (issue 31): first table < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_tui import Clock, Timing, _drawn, _idle, _wait, build, timed  # noqa: E402
from textual.widgets import DataTable  # noqa: E402

from presrm import inspect as Q  # noqa: E402
from presrm.inspect.flips import FlipQuery, compare_trees  # noqa: E402
from presrm.tui.app import InspectorApp  # noqa: E402
from presrm.tui.screens.pair import PairScreen  # noqa: E402

TARGET = 1.0


def queries_alone(path: Path) -> Timing:
    index = Q.TreeIndex(path)
    index.refresh()
    return timed(lambda: compare_trees(index.table, index.table, FlipQuery(a=1, b=2)))


async def one_app(path: Path, started: bool) -> dict[str, Timing]:
    """``started``: press 4 as soon as the app runs; else once the tree index is loaded."""
    out: dict[str, Timing] = {}
    start = Clock()
    app = InspectorApp(path, refresh_interval=None)
    async with app.run_test(size=(150, 45)) as pilot:

        def rows() -> int:
            found = app.screen.query("#compare-table")
            return found.first(DataTable).row_count if found else 0

        def pair_shown() -> bool:
            screen = app.screen
            return isinstance(screen, PairScreen) and screen.details is not None

        if not started:
            await _wait(pilot, lambda: app.index.version is not None and app.generation > 0)
            await _idle(pilot)
            start = Clock()
        # What the 4 key does (pilot.press would add Pilot's wait for an idle process, up to 1 s).
        app.show_tab("compare")
        await _wait(pilot, lambda: rows() > 0)
        await _drawn(pilot)
        if started:
            return {"first table from app start": start.read()}
        out["first table, index loaded"] = start.read()
        await _idle(pilot)
        clock = Clock()
        app.screen.query_one("#compare-table", DataTable).action_select_cursor()  # what Enter does
        await _wait(pilot, pair_shown)
        await _drawn(pilot)
        out["two trees side by side"] = clock.read()
    return out


async def app_times(path: Path) -> dict[str, Timing]:
    return {**await one_app(path, False), **await one_app(path, True)}


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
    print(f"run: {version.nodes:,} nodes, {version.judgments:,} judgments")
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    base = [queries_alone(path) for _ in range(args.repeat)]
    ui = [asyncio.run(app_times(path)) for _ in range(args.repeat)]
    page = compare_trees(Q.tree_summaries(path), Q.tree_summaries(path), FlipQuery(a=1, b=2))
    print(f"M1 → M2: {page.summary.n:,} paired problems, {page.total:,} flipped")
    print(f"pairing alone (in memory): wall {statistics.median(b[0] for b in base):.3f} s")
    ok = True
    for key in ui[0]:
        wall = statistics.median(u[key][0] for u in ui)
        cpu = statistics.median(u[key][1] for u in ui)
        mark = ""
        if key.startswith("first table, index"):
            ok = wall < TARGET
            mark = f"  target < {TARGET:.0f} s: {'met' if ok else 'MISSED'}"
        print(f"{key:32s} wall {wall:.3f} s  cpu {cpu:.3f} s{mark}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
