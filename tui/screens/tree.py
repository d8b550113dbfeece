"""The tree screen: one search tree, a detail pane, and flagging of judge errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static, Tree

from presrm.errors import PresrmError
from presrm.inspect.trees import NodeRow, TreeDetail, load_tree
from presrm.store.flags import add_flag, default_correction, remove_flags
from presrm.tui import format as fmt
from presrm.tui.messages import FlagsChanged, LoadFailed, TreeLoaded, post_current
from presrm.tui.screens.flag import FlagDialog, FlagRequest
from presrm.tui.widgets.keybar import KeyBar
from presrm.tui.widgets.node_detail import NodeDetail
from presrm.tui.widgets.reasoning_tree import ReasoningTree

if TYPE_CHECKING:
    from presrm.tui.app import InspectorApp


def title_text(detail: TreeDetail) -> Text:
    """The screen's header line: tree, problem, model, phase, answers (literal text)."""
    out = Text()
    out.append(f"tree {detail.tree_id}", style="bold")
    out.append(f" · {detail.problem_id} · M{detail.iteration} · {detail.phase} · ")
    out.append(f"{len(detail.nodes)} steps, {len(detail.judgments)} judge calls", style="dim")
    out.append("\n")
    out.append(fmt.one_line(detail.question, 160))
    out.append("\nreference ", style="dim")
    out.append(detail.answer or fmt.DASH, style="bold")
    path = detail.chosen_path()
    final = path[-1] if path and path[-1].is_final else None
    out.append("  final ", style="dim")
    if final is None:
        out.append("none (unfinished)", style="yellow")
    else:
        out.append(final.final_answer or fmt.DASH, style="bold")
        out.append(" ")
        out.append_text(fmt.correct_mark(final.correct))
    return out


class TreeScreen(Screen[None]):
    """Shows one tree; reloads itself when the run changes (keeping the cursor).

    The app keeps one instance (installed as "tree") and reuses it for every tree
    it opens, so opening a tree costs a query and a redraw, not a new screen. The
    app builds it empty (``detail=None``) while the overview is idle, so even the
    first tree opened pays no screen build.
    """

    app: InspectorApp

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("f", "flag", "Flag"),
        Binding("u", "unflag", "Unflag"),
    ]

    def __init__(self, detail: TreeDetail | None = None, focus_node: int | None = None) -> None:
        super().__init__()
        self.tree_id = detail.tree_id if detail is not None else None
        self.focus_node = focus_node
        self.detail: TreeDetail | None = None
        self._initial = detail
        self._mounted = False  # set by on_mount: until then show_detail leaves the tree to it

    def compose(self) -> ComposeResult:
        yield Header()
        title = Text(f"tree {self.tree_id}" if self.tree_id is not None else "", style="dim")
        yield Static(title, id="tree-title")
        with Horizontal(id="tree-body"):
            yield ReasoningTree(id="tree")
            yield NodeDetail(id="detail")
        yield KeyBar()

    def on_mount(self) -> None:
        self.watch(self.app, "generation", self._generation_changed, init=False)
        self._mounted = True
        if self._initial is not None:
            self.show_detail(self._initial, self.focus_node)
            self._initial = None

    def show_detail(self, detail: TreeDetail, focus_node: int | None = None) -> None:
        """Show a loaded tree (the app loads it before showing this screen, which it reuses)."""
        if not self._mounted:  # built ahead and still mounting: on_mount shows it
            self.tree_id, self.focus_node, self._initial = detail.tree_id, focus_node, detail
            return
        if detail.tree_id != self.tree_id or focus_node is not None:
            self.tree_id, self.focus_node, self.detail = detail.tree_id, focus_node, None
        self._apply(detail)

    def _generation_changed(self, _: int) -> None:
        if self.is_current and self.tree_id is not None:
            self.load()

    @work(thread=True, exclusive=True, group="tree")
    def load(self) -> None:
        """Re-read the tree shown (the run changed, or a flag was written)."""
        if self.tree_id is None:
            return
        try:
            detail = load_tree(self.app.run_file, self.tree_id)
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        post_current(self, TreeLoaded(detail))

    @on(TreeLoaded)
    def _loaded(self, message: TreeLoaded) -> None:
        message.stop()
        if message.detail.tree_id == self.tree_id:  # else a late answer for the tree shown before
            self._apply(message.detail)

    def _apply(self, detail: TreeDetail) -> None:
        if detail == self.detail:
            return  # nothing new in this tree: keep the view as it is
        first = self.detail is None
        self.detail = detail
        self.query_one("#tree-title", Static).update(title_text(detail))
        tree = self.query_one(ReasoningTree)
        tree.show(detail, self.focus_node if first else None)
        if first:
            tree.focus()
        # Always: in a reused screen the cursor can land on the line it was on in the tree shown
        # before, and then no highlight event refreshes the step pane.
        self._refresh_detail()

    def _refresh_detail(self) -> None:
        tree = self.query_one(ReasoningTree)
        if self.detail is None:
            return
        node = tree.cursor_node.data if tree.cursor_node is not None else None
        current = self.detail.by_id.get(node.node_id) if node is not None else None
        self.query_one(NodeDetail).show(self.detail, current)

    @on(Tree.NodeHighlighted, "#tree")
    def _highlighted(self, event: Tree.NodeHighlighted[NodeRow]) -> None:
        if self.detail is not None:
            self.query_one(NodeDetail).show(self.detail, event.node.data)

    # ---- flags ------------------------------------------------------------------------------
    def _target(self) -> tuple[str, int, Text, str | None] | None:
        """(target, id, description, default corrected verdict) of what f/u act on."""
        detail_pane = self.query_one(NodeDetail)
        table = self.query_one("#judgments", DataTable)
        if table.has_focus:
            j = detail_pane.current_judgment
            if j is None:
                return None
            desc = fmt.judgment_detail(j, detail_pane.node.node_id if detail_pane.node else None)
            return "judgment", j.judgment_id, desc, default_correction("judgment", j.verdict)
        tree = self.query_one(ReasoningTree)
        node = tree.cursor_node.data if tree.cursor_node is not None else None
        if node is None:
            return None
        desc = Text()
        desc.append(fmt.one_line(node.text, 200))
        return "node", node.node_id, desc, None

    def action_flag(self) -> None:
        target = self._target()
        if target is None:
            self.notify("select a step or a judge call to flag", severity="warning")
            return
        kind, target_id, desc, verdict = target
        self.app.push_screen(FlagDialog(kind, target_id, desc, verdict), self._flag_answered)

    def _flag_answered(self, request: FlagRequest | None) -> None:
        if request is not None:
            self.write_flag(request)

    def action_unflag(self) -> None:
        target = self._target()
        if target is None:
            return
        self.delete_flags(target[0], target[1])

    @work(thread=True, group="flag-write")
    def write_flag(self, request: FlagRequest) -> None:
        try:
            flag = add_flag(
                self.app.run_file,
                request.target,
                request.target_id,
                note=request.note,
                corrected_verdict=request.corrected_verdict,
            )
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        self.post_message(FlagsChanged(f"flagged {flag.target} {flag.target_id} (flag {flag.flag_id})"))

    @work(thread=True, group="flag-write")
    def delete_flags(self, target: str, target_id: int) -> None:
        try:
            n = remove_flags(self.app.run_file, target, target_id)
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        self.post_message(FlagsChanged(f"removed {n} flag{'s' if n != 1 else ''} from {target} {target_id}"))

    @on(FlagsChanged)
    def _flags_changed(self, message: FlagsChanged) -> None:
        message.stop()
        self.notify(message.text, markup=False)
        self.load()
        self.app.refresh_run()

    def action_back(self) -> None:
        self.app.pop_screen()
