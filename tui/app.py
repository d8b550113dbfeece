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

from textual import on, work
from textual.app import App
from textual.binding import Binding
from textual.reactive import reactive
from textual.worker import WorkerState

from presrm.errors import PresrmError
from presrm.inspect.problems import TreeIndex
from presrm.inspect.trees import load_tree
from presrm.store.flags import export_flags_jsonl
from presrm.tui.commands import InspectorCommands
from presrm.tui.messages import IndexUpdated, LoadFailed, TreeReady, post_current
from presrm.tui.screens.error import ErrorScreen
from presrm.tui.screens.help import HelpScreen
from presrm.tui.screens.main import MainScreen
from presrm.tui.screens.tree import TreeScreen


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

    def __init__(self, run_file: Path | str, *, refresh_interval: float | None = 2.0) -> None:
        super().__init__()
        self.run_file = Path(run_file)
        self.index = TreeIndex(self.run_file)
        self.refresh_interval = refresh_interval
        self.failed: str | None = None
        self._index_lock = threading.Lock()
        self._tree_screen: TreeScreen | None = None
        self._index_started = False

    def on_mount(self) -> None:
        self.sub_title = self.run_file.name
        if not self.run_file.exists():
            # Same message as the store's, without starting any worker.
            self._fail(f"run file not found: {self.run_file}")
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

    @work(thread=True, exclusive=True, group="index")
    def refresh_index(self, full: bool = False) -> None:
        """Bring the tree index up to date (cheap when nothing changed)."""
        with self._index_lock:
            try:
                changed = self.index.refresh(full=full)
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

    # ---- navigation ---------------------------------------------------------------------------
    def open_tree(self, tree_id: int, focus_node: int | None = None) -> None:
        """Show one search tree: load it, then show it (one TreeScreen, installed once, reused)."""
        self._load_tree(tree_id, focus_node)

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
