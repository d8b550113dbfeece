"""``presrm inspect``: the Textual inspector of a run file.

The app never keeps the run file open. It holds a :class:`TreeIndex` (one summary row
per search tree, in memory) that a thread worker refreshes every ``refresh_interval``
seconds when the file's row counts changed; each refresh bumps the reactive
``generation``, and every view watches it and reloads its own data in its own thread
worker. All file access goes through presrm.inspect / presrm.store.flags, each
call a short read-only (flags: read-write) open, so a live run keeps writing.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.timer import Timer
from textual.worker import WorkerState

from presrm.errors import PresrmError
from presrm.inspect.problems import TreeIndex
from presrm.inspect.trees import TreeDetail, load_tree
from presrm.store.flags import export_flags_jsonl
from presrm.tui.commands import InspectorCommands
from presrm.tui.messages import (
    IndexUpdated,
    LoadFailed,
    PrefetchFailed,
    TreePrefetched,
    TreeReady,
    post_current,
)
from presrm.tui.screens.error import ErrorScreen
from presrm.tui.screens.help import HelpScreen
from presrm.tui.screens.main import MainScreen
from presrm.tui.screens.pair import PairScreen
from presrm.tui.screens.tree import TreeScreen

PREFETCH_DELAY = 0.05
"""Seconds the cursor must rest on a row before its tree is read ahead (not on every row it passes)."""


class InspectorApp(App[None]):
    """Browse runs, iterations, problems, reasoning trees and calibration; flag judge errors."""

    CSS_PATH = "app.tcss"
    TITLE = "presrm inspect"
    COMMANDS = App.COMMANDS | {InspectorCommands}
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("r", "reload", "Reload"),
    ]

    generation: reactive[int] = reactive(0)
    """Bumped each time the tree index changed; views watch it and reload."""

    def __init__(
        self,
        run_file: Path | str,
        *,
        refresh_interval: float | None = 2.0,
        compare_file: Path | str | None = None,
    ) -> None:
        super().__init__()
        self.run_file = Path(run_file)
        self.index = TreeIndex(self.run_file)
        # A second run over the same held-out problems: side B of the compare tab.
        self.compare_file = Path(compare_file) if compare_file is not None else None
        self.compare_index = TreeIndex(self.compare_file) if self.compare_file is not None else None
        self.refresh_interval = refresh_interval
        self.failed: str | None = None
        self._index_lock = threading.Lock()
        self._tree_screen: TreeScreen | None = None
        self._index_started = False
        # Read-ahead of the tree under a table's cursor: opening it then costs one redraw, not a
        # file open and a query. One tree, valid while the index generation it was read at lasts.
        self._prefetched: TreePrefetched | None = None
        self._prefetching: int | None = None
        self._wanted: int | None = None  # the tree under a table's cursor, last asked for
        self._prefetch_timer: Timer | None = None
        self._open_pending: tuple[int, int | None] | None = None

    def on_mount(self) -> None:
        self.sub_title = self.run_file.name
        for path in (self.run_file, self.compare_file):
            if path is not None and not path.exists():
                # Same message as the store's, without starting any worker.
                self._fail(f"run file not found: {path}")
                return
        # Read once before any view watches it: Textual initialises a reactive on its first read
        # and then calls every watcher registered so far, which made each view load twice.
        _ = self.generation
        self.push_screen(MainScreen())
        # The first screen (overview) reads little; the tree index aggregates every node.
        # It starts once the overview is on screen, or after a second at the latest.
        self.set_timer(1.0, self.start_index)
        if self.refresh_interval:
            self.set_interval(self.refresh_interval, self._poll)

    # ---- the index --------------------------------------------------------------------------
    def start_index(self) -> None:
        """Load the tree index the first time (later refreshes come from the poll)."""
        if not self._index_started and self.failed is None:
            self._index_started = True
            self.refresh_index(full=True)
            # While the index query runs in its thread, build the tree screen (compose, styles):
            # then the first tree opened costs what a later one does.
            self.call_later(self._build_tree_screen)

    @work(thread=True, exclusive=True, group="index")
    def refresh_index(self, full: bool = False) -> None:
        """Bring the tree index up to date (cheap when nothing changed)."""
        with self._index_lock:
            try:
                changed = self.index.refresh(full=full)
                if self.compare_index is not None:
                    changed = self.compare_index.refresh(full=full) or changed
            except PresrmError as err:
                self.post_message(LoadFailed(str(err)))
                return
        if changed and self.index.version is not None:
            self.post_message(IndexUpdated(self.index.version))

    def _poll(self) -> None:
        if self.failed is not None or not self._index_started:
            return
        busy = any(
            w.group == "index" and w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in self.workers
        )
        if not busy:
            self.refresh_index()

    def refresh_run(self) -> None:
        """Pick up changes now instead of at the next poll (e.g. after a flag was written)."""
        self.refresh_index()

    @on(IndexUpdated)
    def _index_updated(self, _: IndexUpdated) -> None:
        self.generation += 1

    @on(LoadFailed)
    def _load_failed(self, message: LoadFailed) -> None:
        if self.generation == 0 and self.index.version is None:
            self._fail(message.message)
        else:
            self.notify(message.message, severity="error", markup=False)

    def _fail(self, message: str) -> None:
        if self.failed is not None:
            return
        self.failed = message
        self.push_screen(ErrorScreen(message))

    # ---- comparing two models -----------------------------------------------------------------
    def compare_table(self) -> pa.Table:
        """The tree summaries of the compare tab's side B (this run's, or the second run's)."""
        return (self.compare_index or self.index).table

    def side_label(self, side: str) -> str:
        """What names a side's run before its model (nothing when both are this run)."""
        if self.compare_file is None:
            return ""
        return f"{(self.run_file if side == 'a' else self.compare_file).stem}:"

    def open_pair(self, tree_a: int, tree_b: int, names: tuple[str, str]) -> None:
        """Show one problem's two trees side by side (A's from this run, B's from side B's run)."""
        self.push_screen(PairScreen(tree_a, tree_b, names))

    # ---- navigation ---------------------------------------------------------------------------
    def open_tree(self, tree_id: int, focus_node: int | None = None) -> None:
        """Show one search tree: load it, then show it (one TreeScreen, installed once, reused)."""
        ahead = self._read_ahead(tree_id)
        if ahead is not None:
            self._tree_ready(TreeReady(ahead, focus_node))
        elif self._prefetching == tree_id:
            self._open_pending = (tree_id, focus_node)  # shown when the read-ahead arrives
        else:
            self._load_tree(tree_id, focus_node)

    def _read_ahead(self, tree_id: int) -> TreeDetail | None:
        """The read-ahead copy of a tree if it is as fresh as everything else on screen."""
        ahead = self._prefetched
        if ahead is not None and ahead.detail.tree_id == tree_id and ahead.generation == self.generation:
            return ahead.detail
        return None

    def prefetch_tree(self, tree_id: int) -> None:
        """Read ahead the tree under a table's cursor once the cursor rests there."""
        self._wanted = tree_id
        if self._prefetch_timer is not None:
            self._prefetch_timer.stop()
            self._prefetch_timer = None
        if self._open_pending is not None:
            return  # a newer read-ahead would cancel the one an open waits for
        if self._read_ahead(tree_id) is not None or self._prefetching == tree_id or self.failed is not None:
            return
        self._prefetch_timer = self.set_timer(PREFETCH_DELAY, lambda: self._start_prefetch(tree_id))

    def _start_prefetch(self, tree_id: int) -> None:
        self._prefetch_timer = None
        self._prefetching = tree_id
        self._prefetch(tree_id, self.generation)

    @work(thread=True, exclusive=True, group="prefetch-tree")
    def _prefetch(self, tree_id: int, generation: int) -> None:
        try:
            detail = load_tree(self.run_file, tree_id)
        except PresrmError:
            post_current(self, PrefetchFailed(tree_id))
            return
        post_current(self, TreePrefetched(detail, generation))

    @on(TreePrefetched)
    def _prefetched_tree(self, message: TreePrefetched) -> None:
        tree_id = message.detail.tree_id
        if self._prefetching == tree_id:
            self._prefetching = None
        # A read of a row the cursor has left must not replace the copy of the row it rests on.
        if tree_id == self._wanted or self._wanted is None or self._read_ahead(self._wanted) is None:
            self._prefetched = message
        pending, self._open_pending = self._open_pending, None
        if pending is not None and pending[0] == tree_id:
            if message.generation == self.generation:
                self._tree_ready(TreeReady(message.detail, pending[1]))
            else:  # the run changed while it was read: read it again
                self._load_tree(*pending)

    @on(PrefetchFailed)
    def _prefetch_failed(self, message: PrefetchFailed) -> None:
        if self._prefetching == message.tree_id:
            self._prefetching = None
        pending, self._open_pending = self._open_pending, None
        if pending is not None and pending[0] == message.tree_id:
            self._load_tree(*pending)  # reports the error the read-ahead met

    @work(thread=True, exclusive=True, group="open-tree")
    def _load_tree(self, tree_id: int, focus_node: int | None) -> None:
        try:
            detail = load_tree(self.run_file, tree_id)
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        post_current(self, TreeReady(detail, focus_node))

    @on(TreeReady)
    def _tree_ready(self, message: TreeReady) -> None:
        with self.batch_update():  # one redraw for the new tree and the screen switch
            self._show_tree(message)

    def _build_tree_screen(self) -> None:
        """Install the (empty) tree screen and mount it off screen, so its first show is a redraw."""
        if self._tree_screen is None and self.failed is None:
            self._tree_screen = TreeScreen()
            self.install_screen(self._tree_screen, name="tree")
            # What push_screen does to a screen it shows for the first time, without showing it.
            self._get_screen(self._tree_screen)

    def _show_tree(self, message: TreeReady) -> None:
        if self._tree_screen is None:
            self._tree_screen = TreeScreen(message.detail, message.focus_node)
            self.install_screen(self._tree_screen, name="tree")
        else:
            self._tree_screen.show_detail(message.detail, message.focus_node)
        if self.screen is not self._tree_screen:
            self.push_screen("tree")

    def _main(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def show_tab(self, tab: str) -> None:
        """Go back to the main screen and show a tab."""
        main = self._main()
        if main is None:
            return
        while len(self.screen_stack) > 1 and not isinstance(self.screen, MainScreen):
            self.pop_screen()
        main.action_show_tab(tab)

    def apply_preset(self, preset: str) -> None:
        """Show the problems table with a filter preset."""
        from presrm.tui.widgets.problems import ProblemsPane

        self.show_tab("problems")
        main = self._main()
        if main is not None:
            main.query_one(ProblemsPane).set_query(preset=preset)

    # ---- actions ------------------------------------------------------------------------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_reload(self) -> None:
        if self.failed is not None:
            return
        if self._index_started:
            self.refresh_index(full=True)
        else:
            self.start_index()

    def action_export_flags(self) -> None:
        self._export_flags()

    @work(thread=True, group="export")
    def _export_flags(self) -> None:
        out = self.run_file.with_name(self.run_file.stem + ".flags.jsonl")
        try:
            n = export_flags_jsonl(self.run_file, out)
        except PresrmError as err:
            self.call_from_thread(self.notify, str(err), severity="error", markup=False)
            return
        self.call_from_thread(self.notify, f"wrote {n} EFT examples to {out}", markup=False)
