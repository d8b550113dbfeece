"""The calibration tab: self-score of solutions against their correctness.

A reliability table and plot (bins of self-score -> observed accuracy), ECE and AUROC,
and the most confident wrong and least confident right solutions; enter on one of
those opens its tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Label, Select, Static
from textual_plotext import PlotextPlot

from presrm.errors import PresrmError
from presrm.inspect.calibration import SCORES, Calibration, TreeRef, calibration
from presrm.tui import format as fmt
from presrm.tui.messages import CalibrationLoaded, LoadFailed, post_current

if TYPE_CHECKING:
    from presrm.tui.app import InspectorApp

SCORE_LABELS = {
    "min_score": "min step score",
    "mean_score": "mean step score",
    "last_score": "last step score",
}


def ref_cells(ref: TreeRef) -> list[Text]:
    return [
        Text(str(ref.tree_id), justify="right"),
        fmt.plain(ref.problem_id),
        Text(f"M{ref.iteration}"),
        fmt.plain(ref.phase),
        Text(fmt.score(ref.score), style=fmt.score_style(ref.score), justify="right"),
        fmt.plain(fmt.one_line(ref.final_answer, 12) if ref.final_answer is not None else fmt.DASH),
        fmt.correct_mark(ref.correct),
    ]


class CalibrationPane(Vertical):
    """Controls, reliability table + plot, extremes lists."""

    app: InspectorApp

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.iteration: int | None = None
        self.phase: str | None = "eval"
        self.score = "min_score"
        self.result: Calibration | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="calib-controls"):
            yield Select([], prompt="all iterations", id="calib-iteration", compact=True)
            yield Select(
                [(p, p) for p in ("eval", "train", "greedy")],
                value="eval",
                prompt="all phases",
                id="calib-phase",
                compact=True,
            )
            yield Select(
                [(SCORE_LABELS[s], s) for s in SCORES],
                value="min_score",
                allow_blank=False,
                id="calib-score",
                compact=True,
            )
        yield Static(Text("loading…", style="dim"), id="calib-summary")
        with Horizontal(id="calib-top"):
            yield DataTable(id="reliability", cursor_type="row", zebra_stripes=True)
            yield PlotextPlot(id="reliability-plot")
        with Horizontal(id="calib-bottom"):
            with Vertical():
                yield Label("Most confident wrong solutions (enter: open tree)")
                yield DataTable(id="confident-wrong", cursor_type="row", zebra_stripes=True)
            with Vertical():
                yield Label("Least confident right solutions (enter: open tree)")
                yield DataTable(id="unconfident-right", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        rel = self.query_one("#reliability", DataTable)
        for label in ("score bin", "n", "mean score", "accuracy", "gap"):
            rel.add_column(label)
        for table_id in ("#confident-wrong", "#unconfident-right"):
            table = self.query_one(table_id, DataTable)
            for label in ("tree", "problem", "model", "phase", "score", "answer", "ok"):
                table.add_column(label)
        self.watch(self.app, "generation", self._generation_changed, init=False)
        if self.app.generation:
            self.reload()

    def _generation_changed(self, _: int) -> None:
        select: Select[int] = self.query_one("#calib-iteration", Select)
        table = self.app.index.table
        its = (
            sorted({int(i) for i in table.column("iteration").unique().to_pylist()}) if table.num_rows else []
        )
        if its != getattr(select, "_presrm_its", None):
            select._presrm_its = its  # type: ignore[attr-defined]
            with select.prevent(Select.Changed):
                select.set_options([(f"M{i}", i) for i in its])
                if self.iteration in its:
                    select.value = self.iteration
        self.reload()

    @work(thread=True, exclusive=True, group="calibration")
    def reload(self) -> None:
        try:
            result = calibration(
                self.app.index.table, score=self.score, iteration=self.iteration, phase=self.phase
            )
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        post_current(self, CalibrationLoaded(result))

    @on(CalibrationLoaded)
    def show(self, message: CalibrationLoaded) -> None:
        message.stop()
        cal = self.result = message.calibration
        summary = Text()
        if cal.n == 0:
            summary.append("no finished solutions with a self-score for this selection", style="bold yellow")
        else:
            summary.append(f"{cal.n:,} finished solutions", style="bold")
            summary.append(f" · score = {SCORE_LABELS[cal.score]} · ECE {fmt.score(cal.ece, 3)}")
            summary.append(f" · AUROC {fmt.score(cal.auroc, 3)}")
        self.query_one("#calib-summary", Static).update(summary)
        rel = self.query_one("#reliability", DataTable)
        rel.clear()
        for b in cal.bins:
            gap = None if b.accuracy is None or b.mean_score is None else b.accuracy - b.mean_score
            rel.add_row(
                Text(f"{b.lo:.1f}–{b.hi:.1f}"),
                Text(fmt.count(b.n), justify="right"),
                Text(fmt.score(b.mean_score, 3), justify="right"),
                Text(fmt.pct(b.accuracy), justify="right"),
                Text(
                    fmt.DASH if gap is None else f"{gap:+.3f}",
                    justify="right",
                    style="" if gap is None else "red" if abs(gap) > 0.2 else "",
                ),
            )
        for table_id, refs in (
            ("#confident-wrong", cal.confident_wrong),
            ("#unconfident-right", cal.unconfident_right),
        ):
            table = self.query_one(table_id, DataTable)
            table.clear()
            for ref in refs:
                table.add_row(*ref_cells(ref), key=str(ref.tree_id))
        self._plot(cal)

    def _plot(self, cal: Calibration) -> None:
        plot = self.query_one("#reliability-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("reliability: accuracy per score bin")
        filled = [b for b in cal.bins if b.n]
        if filled:
            plt.bar([(b.lo + b.hi) / 2 for b in filled], [b.accuracy or 0.0 for b in filled], width=0.08)
        plt.plot([0, 1], [0, 1], label="perfect calibration", marker="braille")
        ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
        plt.xticks(ticks, [f"{t:.1f}" for t in ticks])
        plt.yticks(ticks, [f"{t:.1f}" for t in ticks])
        plt.xlim(0, 1)
        plt.ylim(0, 1)
        plot.refresh()

    # ---- controls ---------------------------------------------------------------------------
    @on(Select.Changed, "#calib-iteration")
    def _iteration(self, event: Select.Changed) -> None:
        self.iteration = None if event.value is Select.NULL else event.value  # type: ignore[assignment]
        self.reload()

    @on(Select.Changed, "#calib-phase")
    def _phase(self, event: Select.Changed) -> None:
        self.phase = None if event.value is Select.NULL else str(event.value)
        self.reload()

    @on(Select.Changed, "#calib-score")
    def _score(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.score = event.value
            self.reload()

    @on(DataTable.RowSelected, "#confident-wrong, #unconfident-right")
    def _open(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value is not None:
            self.app.open_tree(int(event.row_key.value))

    @on(DataTable.RowHighlighted, "#confident-wrong, #unconfident-right")
    def _prefetch(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.app.prefetch_tree(int(event.row_key.value))
