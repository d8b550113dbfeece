"""The detail pane of the tree screen: one step in full, and every judge call that showed it."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Label, Static

from presrm.inspect.trees import JudgmentRow, NodeRow, TreeDetail
from presrm.store.flags import FlagInfo
from presrm.tui import format as fmt


def flags_text(flags: list[FlagInfo]) -> Text:
    """Flags on a step or judgment, notes verbatim."""
    out = Text()
    for f in flags:
        out.append(f"⚑ flag {f.flag_id}", style="bold magenta")
        out.append(f" by {fmt.visible(f.who)}")
        if f.created_at is not None:
            out.append(f" at {f.created_at:%Y-%m-%d %H:%M}", style="dim")
        if f.corrected_verdict:
            out.append(f"  {f.original_verdict or fmt.DASH} → {f.corrected_verdict}")
        if f.note:
            out.append("  note: ", style="dim")
            out.append(fmt.visible(f.note))
        out.append("\n")
    out.rstrip()
    return out


class NodeDetail(VerticalScroll):
    """Shows a :class:`NodeRow` and its judge calls; the judgments table has a row cursor."""

    can_focus = False  # tab goes from the tree straight to the judgments table

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.detail: TreeDetail | None = None
        self.node: NodeRow | None = None
        self.calls: list[JudgmentRow] = []

    def compose(self) -> ComposeResult:
        yield Static(Text("select a step", style="dim"), id="node-info")
        yield Static("", id="node-flags", markup=False)
        yield Label("Judge calls showing this step (both orders)", id="judgments-label")
        yield DataTable(id="judgments", cursor_type="row", zebra_stripes=True)
        yield Static("", id="judgment-info", markup=False)

    def on_mount(self) -> None:
        table = self.query_one("#judgments", DataTable)
        for key, label in (
            ("judgment_id", "id"),
            ("order", "ord"),
            ("node_a", "A"),
            ("node_b", "B"),
            ("verdict", "says"),
            ("p_a", "p_a"),
            ("p_b", "p_b"),
            ("result", "this"),
            ("expected", "exp"),
            ("flags", "⚑"),
        ):
            table.add_column(label, key=key)

    @property
    def current_judgment(self) -> JudgmentRow | None:
        """The judgment under the table's cursor."""
        table = self.query_one("#judgments", DataTable)
        if not self.calls or table.cursor_row < 0 or table.cursor_row >= len(self.calls):
            return None
        return self.calls[table.cursor_row]

    def show(self, detail: TreeDetail, node: NodeRow | None) -> None:
        """Show ``node`` of ``detail`` (None: the question at the root)."""
        self.detail, self.node = detail, node
        info = self.query_one("#node-info", Static)
        table = self.query_one("#judgments", DataTable)
        previous = self.current_judgment
        table.clear()
        if node is None:
            text = Text()
            text.append(f"problem {detail.problem_id}", style="bold")
            text.append(f"   M{detail.iteration} · {detail.phase} · tree {detail.tree_id}\n\n")
            text.append(fmt.visible(detail.question))
            text.append("\n\nreference answer: ", style="dim")
            text.append(fmt.visible(detail.answer or fmt.DASH), style="bold")
            path = detail.chosen_path()
            if path and path[-1].is_final:
                text.append("   final answer: ", style="dim")
                text.append(fmt.visible(path[-1].final_answer or fmt.DASH), style="bold")
                text.append(" ")
                text.append_text(fmt.correct_mark(path[-1].correct))
            info.update(text)
            self.query_one("#node-flags", Static).update("")
            self.calls = []
            self.query_one("#judgment-info", Static).update("")
            return
        info.update(fmt.node_detail(node))
        self.query_one("#node-flags", Static).update(flags_text(detail.flags_on("node", node.node_id)))
        self.calls = detail.judgments_of(node.node_id)
        for j in self.calls:
            result = Text(fmt.DASH, style="dim")
            if j.winner is not None and j.node_b is not None:
                won = j.winner == node.node_id
                result = Text("won" if won else "lost", style="green" if won else "red")
            n_flags = len(detail.flags_on("judgment", j.judgment_id))
            table.add_row(
                Text(str(j.judgment_id), justify="right"),
                Text(str(j.order)),
                Text(str(j.node_a) + ("*" if j.node_a == node.node_id else "")),
                Text(
                    fmt.DASH
                    if j.node_b is None
                    else str(j.node_b) + ("*" if j.node_b == node.node_id else "")
                ),
                Text(j.verdict or "??", style="" if j.verdict else "bold red"),
                Text(fmt.score(j.p_a), justify="right"),
                Text(fmt.score(j.p_b), justify="right"),
                result,
                Text(
                    j.expected or fmt.DASH,
                    style="" if j.expected is None or j.expected == j.verdict else "red",
                ),
                Text("⚑" * n_flags, style="bold magenta"),
                key=str(j.judgment_id),
            )
        if not self.calls:
            self.query_one("#judgment-info", Static).update(
                Text("no judge calls showed this step", style="dim")
            )
        else:
            row = 0
            if previous is not None:
                ids = [j.judgment_id for j in self.calls]
                row = ids.index(previous.judgment_id) if previous.judgment_id in ids else 0
            table.move_cursor(row=row, animate=False)
            self._show_judgment(self.calls[row])

    def _show_judgment(self, j: JudgmentRow) -> None:
        assert self.detail is not None
        text = fmt.judgment_detail(j, self.node.node_id if self.node else None)
        flags = flags_text(self.detail.flags_on("judgment", j.judgment_id))
        if flags:
            text.append("\n")
            text.append_text(flags)
        self.query_one("#judgment-info", Static).update(text)

    @on(DataTable.RowHighlighted, "#judgments")
    def _highlight(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.calls):
            self._show_judgment(self.calls[event.cursor_row])
