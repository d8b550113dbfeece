"""Two reasoning trees of one problem side by side: side A's model and side B's."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Header, Static

from presrm.errors import PresrmError
from presrm.inspect.trees import TreeDetail, load_tree
from presrm.tui import format as fmt
from presrm.tui.messages import LoadFailed, PairLoaded, post_current
from presrm.tui.widgets.keybar import KeyBar
from presrm.tui.widgets.reasoning_tree import ReasoningTree

if TYPE_CHECKING:
    from presrm.tui.app import InspectorApp


def side_title(name: str, detail: TreeDetail) -> Text:
    """One side's header: model, tree, final answer and whether it is right (literal text)."""
    out = Text()
    out.append(name, style="bold")
    out.append(f" · tree {detail.tree_id} · {detail.phase} · ", style="dim")
    path = detail.chosen_path()
    final = path[-1] if path and path[-1].is_final else None
    if final is None:
        out.append("no final answer", style="yellow")
    else:
        out.append(fmt.one_line(final.final_answer, 30) if final.final_answer else fmt.DASH, style="bold")
        out.append(" ")
        out.append_text(fmt.correct_mark(final.correct))
    return out


class PairScreen(Screen[None]):
    """Side A's and side B's trees of one problem; reloads while the run writes."""

    app: InspectorApp

    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, tree_a: int, tree_b: int, names: tuple[str, str]) -> None:
        super().__init__()
        self.trees = (tree_a, tree_b)
        self.names = names
        self.details: tuple[TreeDetail, TreeDetail] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("loading the two trees…", style="dim"), id="pair-title")
        with Horizontal(id="pair-body"):
            for side in ("a", "b"):
                with Vertical(classes="pair-side"):
                    yield Static(Text(""), id=f"pair-{side}-title", classes="pair-side-title")
                    yield ReasoningTree(id=f"pair-{side}")
        yield KeyBar()

    def on_mount(self) -> None:
        self.watch(self.app, "generation", self._generation_changed, init=False)
        self.load()

    def _generation_changed(self, _: int) -> None:
        if self.is_current:
            self.load()

    @work(thread=True, exclusive=True, group="pair")
    def load(self) -> None:
        try:
            a = load_tree(self.app.run_file, self.trees[0])
            b = load_tree(self.app.compare_file or self.app.run_file, self.trees[1])
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        post_current(self, PairLoaded(a, b))

    @on(PairLoaded)
    def _loaded(self, message: PairLoaded) -> None:
        message.stop()
        if self.details == (message.a, message.b):
            return  # nothing new in either tree: keep the view as it is
        first = self.details is None
        self.details = (message.a, message.b)
        title = Text()
        title.append(f"{message.a.problem_id} ", style="bold")
        title.append(fmt.one_line(message.a.question, 150))
        title.append("\nreference ", style="dim")
        title.append(message.a.answer or fmt.DASH, style="bold")
        self.query_one("#pair-title", Static).update(title)
        for side, detail, name in (("a", message.a, self.names[0]), ("b", message.b, self.names[1])):
            self.query_one(f"#pair-{side}-title", Static).update(side_title(name, detail))
            self.query_one(f"#pair-{side}", ReasoningTree).show(detail)
        if first:
            self.query_one("#pair-a", ReasoningTree).focus()

    def action_back(self) -> None:
        self.app.pop_screen()
