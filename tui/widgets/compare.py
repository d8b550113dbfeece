"""The compare tab: two models on the same problems — the problems one got right and the other
wrong, counts and the paired difference; Enter opens the two trees of a problem side by side.

Side A is an iteration of this run; side B an iteration of this run or, with ``presrm inspect A
--compare B``, of the second run file. Both come from the apps' tree indexes, refreshed while a
run writes, so the table follows a live run like the problems table does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Input, Select, Static

from presrm.errors import PresrmError
from presrm.inspect.flips import KINDS, FlipPage, FlipQuery, compare_trees
from presrm.inspect.problems import PRESETS, search_tree_ids
from presrm.tui import format as fmt
from presrm.tui.messages import ComparisonLoaded, LoadFailed, post_current

if TYPE_CHECKING:
    from presrm.tui.app import InspectorApp

COLUMNS: list[tuple[str, str]] = [
    ("problem_id", "problem"),
    ("kind", "change"),
    ("correct_a", "A"),
    ("final_a", "A answer"),
    ("min_a", "A min"),
    ("correct_b", "B"),
    ("final_b", "B answer"),
    ("min_b", "B min"),
    ("answer", "reference"),
    ("question", "question"),
]
PHASES = ("greedy", "eval", "train")
_KIND_STYLE = {"fixed": "bold green", "broken": "bold red", "right": "green", "wrong": "red"}
_KIND_TEXT = {"fixed": "✗ → ✓", "broken": "✓ → ✗", "right": "✓ = ✓", "wrong": "✗ = ✗"}


def iterations_of(table: pa.Table, phase: str) -> list[int]:
    """The iterations with trees of ``phase`` in a tree summary table."""
    if not table.num_rows:
        return []
    rows = table.filter(pc.equal(table.column("phase"), phase))
    return sorted({int(i) for i in rows.column("iteration").unique().to_pylist()})


def compare_cells(row: dict[str, Any]) -> list[Text]:
    """The cells of one pair (literal text: answers and questions are model or task text)."""

    def answer(value: str | None) -> Text:
        return fmt.plain(fmt.one_line(value, 14) if value is not None else fmt.DASH)

    def score(value: float | None) -> Text:
        return Text(fmt.score(value), style=fmt.score_style(value), justify="right")

    return [
        fmt.plain(row["problem_id"]),
        Text(_KIND_TEXT[row["kind"]], style=_KIND_STYLE[row["kind"]]),
        fmt.correct_mark(bool(row["correct_a"])),
        answer(row["final_a"]),
        score(row["min_a"]),
        fmt.correct_mark(bool(row["correct_b"])),
        answer(row["final_b"]),
        score(row["min_b"]),
        answer(row["answer"]),
        fmt.plain(fmt.one_line(row["question"], 50), style="dim"),
    ]


def summary_text(page: FlipPage, a_name: str, b_name: str) -> Text:
    """Counts of the pairs and the paired difference B − A with its 95 % interval."""
    s, q = page.summary, page.query
    out = Text()
    if q.a is None or q.b is None:
        return Text("choose two models to compare", style="bold yellow")
    out.append(f"{a_name} → {b_name}", style="bold")
    out.append(f" on {s.n:,} {q.phase} problems: ")
    out.append(f"{s.fixed:,} wrong → right", style="bold green")
    out.append(" · ")
    out.append(f"{s.broken:,} right → wrong", style="bold red")
    out.append(f" · {s.both_right:,} both right · {s.both_wrong:,} both wrong")
    if s.difference is not None:
        out.append(" · accuracy B − A ")
        out.append(f"{fmt.points(s.difference)} points", style="bold")
        out.append(f" [{fmt.points(s.low)}, {fmt.points(s.high)}] (paired, 95 %)", style="dim")
    shown = page.rows.num_rows
    where = f"{q.offset + 1:,}–{q.offset + shown:,} of {page.total:,}" if shown else "none"
    out.append(f"\nproblems {where} · {KINDS[q.kind]} · {PRESETS[q.preset]}", style="dim")
    if q.search:
        out.append("  ·  search ", style="dim")
        out.append(q.search)
    out.append("  ·  enter: the two trees side by side  [ ]: pages", style="dim")
    return out


class ComparePane(Vertical):
    """Model selects and filters, the summary line and the table of paired problems."""

    app: InspectorApp

    BINDINGS = [
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("left_square_bracket", "page(-1)", "Prev page"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query_state = FlipQuery()
        self.page: FlipPage | None = None
        self._chosen = False  # the user picked the models: a live run's new iteration leaves them
        self._debounce: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="compare-models"):
            yield Select([], prompt="model A", id="compare-a", compact=True)
            yield Select([], prompt="model B", id="compare-b", compact=True)
            yield Select(
                [(p, p) for p in PHASES], value="greedy", allow_blank=False, id="compare-phase", compact=True
            )
            yield Select(
                [(d, k) for k, d in KINDS.items()],
                value="flipped",
                allow_blank=False,
                id="compare-kind",
                compact=True,
            )
        with Horizontal(id="compare-filters"):
            yield Select(
                [(d, k) for k, d in PRESETS.items()],
                value="all",
                allow_blank=False,
                id="compare-preset",
                compact=True,
            )
            yield Input(placeholder="search problem, answer or step text", id="compare-search", compact=True)
        yield Static(Text("loading trees…", style="dim"), id="compare-summary")
        yield DataTable(id="compare-table", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.watch(self.app, "generation", self._generation_changed, init=False)
        if self.app.generation:
            self._generation_changed(self.app.generation)

    # ---- the two sides ----------------------------------------------------------------------
    def side_name(self, side: str, iteration: int | None) -> str:
        where = self.app.side_label(side)
        return f"{where}M{iteration}" if iteration is not None else "–"

    def _generation_changed(self, _: int) -> None:
        self._update_models()
        self.reload()

    def _update_models(self) -> None:
        phase = self.query_state.phase
        its_a = iterations_of(self.app.index.table, phase)
        its_b = iterations_of(self.app.compare_table(), phase)
        a, b = self.query_state.a, self.query_state.b
        if not self._chosen or a not in its_a or b not in its_b:
            # The last two models evaluated (or the last of each run): what the last iteration changed.
            a = (
                its_a[-2]
                if self.app.compare_file is None and len(its_a) > 1
                else (its_a[-1] if its_a else None)
            )
            b = its_b[-1] if its_b else None
        for select_id, its, value, side in (("#compare-a", its_a, a, "a"), ("#compare-b", its_b, b, "b")):
            select: Select[int] = self.query_one(select_id, Select)
            with select.prevent(Select.Changed):
                select.set_options([(self.side_name(side, i), i) for i in its])
                if value is not None:
                    select.value = value
        if (a, b) != (self.query_state.a, self.query_state.b):
            self.query_state = self.query_state.with_(a=a, b=b, offset=0)

    def set_query(self, **changes: Any) -> None:
        """Change the query and reload (page 1 unless the change is the page)."""
        self.query_state = self.query_state.with_(**{"offset": 0, **changes})
        self.reload()

    def action_page(self, step: int) -> None:
        total = self.page.total if self.page else 0
        offset = self.query_state.offset + step * self.query_state.limit
        if 0 <= offset < max(total, 1):
            self.set_query(offset=offset)

    @work(thread=True, exclusive=True, group="compare")
    def reload(self) -> None:
        """Pair the two models' trees and filter them (a step-text search reads the files)."""
        query, app = self.query_state, self.app
        try:
            hits_a = search_tree_ids(app.run_file, query.search) if query.search else set()
            other = app.compare_file or app.run_file
            hits_b = search_tree_ids(other, query.search) if query.search else set()
            page = compare_trees(app.index.table, app.compare_table(), query, hits_a, hits_b)
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        post_current(self, ComparisonLoaded(page))

    @on(ComparisonLoaded)
    def show(self, message: ComparisonLoaded) -> None:
        message.stop()
        self.page = message.page
        table = self.query_one("#compare-table", DataTable)
        cursor_key = None
        if table.row_count and table.cursor_row >= 0:
            cursor_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        keys = []
        for row in message.page.rows.to_pylist():
            key = f"{row['tree_a']}:{row['tree_b']}"
            keys.append(key)
            table.add_row(*compare_cells(row), key=key)
        if cursor_key in keys:
            table.move_cursor(row=keys.index(cursor_key), animate=False)
        q = message.page.query
        text = summary_text(message.page, self.side_name("a", q.a), self.side_name("b", q.b))
        if self.app.index.version is None:
            text = Text("loading trees…", style="dim")
        self.query_one("#compare-summary", Static).update(text)

    # ---- controls ---------------------------------------------------------------------------
    @on(Select.Changed, "#compare-a")
    def _a(self, event: Select.Changed) -> None:
        self._chosen = True
        self.set_query(a=None if event.value is Select.NULL else event.value)

    @on(Select.Changed, "#compare-b")
    def _b(self, event: Select.Changed) -> None:
        self._chosen = True
        self.set_query(b=None if event.value is Select.NULL else event.value)

    @on(Select.Changed, "#compare-phase")
    def _phase(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.query_state.phase:
            self.query_state = self.query_state.with_(phase=event.value, offset=0)
            self._update_models()
            self.reload()

    @on(Select.Changed, "#compare-kind")
    def _kind(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.set_query(kind=event.value)

    @on(Select.Changed, "#compare-preset")
    def _preset(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.set_query(preset=event.value)

    @on(Input.Changed, "#compare-search")
    def _search_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        text = event.value.strip()
        self._debounce = self.set_timer(0.25, lambda: self.set_query(search=text))

    @on(Input.Submitted, "#compare-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self.set_query(search=event.value.strip())
        self.query_one("#compare-table", DataTable).focus()

    @on(DataTable.RowSelected, "#compare-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is None or self.page is None:
            return
        tree_a, tree_b = (int(x) for x in event.row_key.value.split(":"))
        q = self.page.query
        self.app.open_pair(tree_a, tree_b, (self.side_name("a", q.a), self.side_name("b", q.b)))
