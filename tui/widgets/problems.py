"""The problems tab: one row per (problem, iteration, phase) search tree; filter, sort, page."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import DataTable, Input, Select, Static

from presrm.errors import PresrmError
from presrm.inspect.problems import PRESETS, SORTABLE, TreeQuery, search_tree_ids, select_trees
from presrm.tui import format as fmt
from presrm.tui.messages import LoadFailed, ProblemsLoaded, post_current

if TYPE_CHECKING:
    from presrm.tui.app import InspectorApp

# (sort key, header); the key is also the column key, so a header click sorts by it.
COLUMNS: list[tuple[str, str]] = [
    ("tree_id", "tree"),
    ("problem_id", "problem"),
    ("iteration", "it"),
    ("phase", "phase"),
    ("correct", "ok"),
    ("final_answer", "answer"),
    ("min_score", "min"),
    ("mean_score", "mean"),
    ("n_steps", "steps"),
    ("n_nodes", "nodes"),
    ("n_rollbacks", "↺"),
    ("inconsistent", "incons"),
    ("unparseable", "unparsed"),
    ("checker_disagree", "≠check"),
    ("n_flags", "⚑"),
    ("question", "question"),
]
PAGE = 200
PHASES = ("train", "eval", "greedy", "eft_test")


def row_cells(row: dict[str, Any]) -> list[Text]:
    """The cells of one tree summary row (literal text; scores with 2 decimals)."""

    def num(value: int | None, alert: bool = False) -> Text:
        return Text(fmt.count(value), justify="right", style="bold red" if alert and value else "")

    return [
        Text(str(row["tree_id"]), justify="right"),
        fmt.plain(row["problem_id"]),
        Text(str(row["iteration"]), justify="right"),
        fmt.plain(row["phase"]),
        fmt.correct_mark(row["correct"]),
        fmt.plain(fmt.one_line(row["final_answer"], 14) if row["final_answer"] is not None else fmt.DASH),
        Text(fmt.score(row["min_score"]), style=fmt.score_style(row["min_score"]), justify="right"),
        Text(fmt.score(row["mean_score"]), style=fmt.score_style(row["mean_score"]), justify="right"),
        num(row["n_steps"]),
        num(row["n_nodes"]),
        num(row["n_rollbacks"]),
        num(row["inconsistent"], alert=True),
        num(row["unparseable"], alert=True),
        num(row["checker_disagree"], alert=True),
        Text("⚑" * min(3, row["n_flags"]) if row["n_flags"] else "", style="bold magenta"),
        fmt.plain(fmt.one_line(row["question"], 60), style="dim"),
    ]


class ProblemsPane(Vertical):
    """Filter bar, the trees table and a status line."""

    app: InspectorApp

    BINDINGS = [
        Binding("slash", "focus_search", "Search"),
        Binding("p", "next_preset", "Preset"),
        Binding("s", "next_sort", "Sort"),
        Binding("d", "reverse", "Reverse"),
        Binding("right_square_bracket", "page(1)", "Next page"),
        Binding("left_square_bracket", "page(-1)", "Prev page"),
    ]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.query_state = TreeQuery(limit=PAGE)
        self._debounce: Timer | None = None
        self.page: ProblemsLoaded | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="filters"):
            yield Select(
                [(desc, key) for key, desc in PRESETS.items()],
                value="all",
                allow_blank=False,
                id="preset",
                compact=True,
            )
            yield Select([], prompt="any iteration", id="iteration-filter", compact=True)
            yield Select([(p, p) for p in PHASES], prompt="any phase", id="phase-filter", compact=True)
            yield Input(placeholder="search problem, answer or step text  (/)", id="search", compact=True)
        yield DataTable(id="problems-table", cursor_type="row", zebra_stripes=True)
        yield Static(Text("loading trees…", style="dim"), id="problems-status")

    def on_mount(self) -> None:
        table = self.query_one("#problems-table", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.watch(self.app, "generation", self._generation_changed, init=False)
        if self.app.generation:
            self.reload()

    # ---- loading ---------------------------------------------------------------------------
    def _generation_changed(self, _: int) -> None:
        self._update_iterations()
        self.reload()

    def _update_iterations(self) -> None:
        select: Select[int] = self.query_one("#iteration-filter", Select)
        table = self.app.index.table
        its = (
            sorted({int(i) for i in table.column("iteration").unique().to_pylist()}) if table.num_rows else []
        )
        current = select.value
        options = [(f"M{i}", i) for i in its]
        if [o[1] for o in options] != [o[1] for o in getattr(select, "_presrm_options", [])]:
            select._presrm_options = options  # type: ignore[attr-defined]
            with select.prevent(Select.Changed):
                select.set_options(options)
                if current in its:
                    select.value = current

    def set_query(self, **changes: Any) -> None:
        """Change the query (e.g. from the command palette) and reload page 1."""
        if "offset" not in changes:
            changes["offset"] = 0
        self.query_state = self.query_state.with_(**changes)
        if "preset" in changes:
            with self.prevent(Select.Changed):
                self.query_one("#preset", Select).value = changes["preset"]
        self.reload()

    @work(thread=True, exclusive=True, group="problems")
    def reload(self) -> None:
        """Filter, sort and page the tree index (step-text search reads the file)."""
        query = self.query_state
        try:
            hits = search_tree_ids(self.app.run_file, query.search) if query.search else set()
            page = select_trees(self.app.index.table, query, hits)
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        post_current(self, ProblemsLoaded(page))

    @on(ProblemsLoaded)
    def show(self, message: ProblemsLoaded) -> None:
        message.stop()
        self.page = message
        page = message.page
        table = self.query_one("#problems-table", DataTable)
        cursor_key = None
        if table.row_count and table.cursor_row >= 0:
            cursor_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        table.clear()
        for row in page.rows.to_pylist():
            table.add_row(*row_cells(row), key=str(row["tree_id"]))
        if cursor_key is not None and cursor_key in {str(t) for t in page.rows.column("tree_id").to_pylist()}:
            table.move_cursor(row=table.get_row_index(cursor_key), animate=False)
        self.query_one("#problems-status", Static).update(self.status_text(message))

    def status_text(self, message: ProblemsLoaded) -> Text:
        page = message.page
        q = page.query
        shown = page.rows.num_rows
        out = Text()
        if self.app.index.version is None:
            return Text("loading trees…", style="dim")
        if page.total == 0:
            if self.app.index.table.num_rows == 0:
                out.append("no search trees in this run yet", style="bold yellow")
            else:
                out.append("no tree matches this filter", style="bold yellow")
        else:
            out.append(f"trees {q.offset + 1:,}–{q.offset + shown:,} of {page.total:,}", style="bold")
        out.append(f"  ·  {PRESETS[q.preset]}  ·  sort {q.sort} {'↓' if q.descending else '↑'}", style="dim")
        if q.search:
            out.append("  ·  search ", style="dim")
            out.append(q.search)
        out.append("  ·  enter: open tree  [ ]: pages  s/d: sort  p: preset", style="dim")
        return out

    # ---- controls ---------------------------------------------------------------------------
    @on(Select.Changed, "#preset")
    def _preset(self, event: Select.Changed) -> None:
        if isinstance(event.value, str) and event.value != self.query_state.preset:
            self.set_query(preset=event.value)

    @on(Select.Changed, "#iteration-filter")
    def _iteration(self, event: Select.Changed) -> None:
        value = None if event.value is Select.NULL else event.value
        self.set_query(iteration=value)

    @on(Select.Changed, "#phase-filter")
    def _phase(self, event: Select.Changed) -> None:
        value = None if event.value is Select.NULL else event.value
        self.set_query(phase=value)

    @on(Input.Changed, "#search")
    def _search_changed(self, event: Input.Changed) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        text = event.value.strip()
        self._debounce = self.set_timer(0.25, lambda: self.set_query(search=text))

    @on(Input.Submitted, "#search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        if self._debounce is not None:
            self._debounce.stop()
        self.set_query(search=event.value.strip())
        self.query_one("#problems-table", DataTable).focus()

    @on(DataTable.HeaderSelected, "#problems-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key not in SORTABLE:
            return
        if key == self.query_state.sort:
            self.set_query(descending=not self.query_state.descending)
        else:
            self.set_query(sort=key, descending=key not in ("tree_id", "problem_id", "iteration", "phase"))

    @on(DataTable.RowSelected, "#problems-table")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.open_tree(int(event.row_key.value))

    @on(DataTable.RowHighlighted, "#problems-table")
    def _prefetch(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.app.prefetch_tree(int(event.row_key.value))

    def action_focus_search(self) -> None:
        self.query_one("#search", Input).focus()

    def action_next_preset(self) -> None:
        keys = list(PRESETS)
        self.set_query(preset=keys[(keys.index(self.query_state.preset) + 1) % len(keys)])

    def action_next_sort(self) -> None:
        keys = [k for k, _ in COLUMNS if k in SORTABLE]
        nxt = (
            keys[(keys.index(self.query_state.sort) + 1) % len(keys)]
            if self.query_state.sort in keys
            else keys[0]
        )
        self.set_query(sort=nxt)

    def action_reverse(self) -> None:
        self.set_query(descending=not self.query_state.descending)

    def action_page(self, step: int) -> None:
        page = self.page.page if self.page else None
        total = page.total if page else 0
        offset = self.query_state.offset + step * PAGE
        if 0 <= offset < max(total, 1):
            self.set_query(offset=offset)
