"""The overview tab: the run, one row per iteration (M0, M1, ...) and a plot over iterations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from presrm.display import interval_suffix
from presrm.errors import PresrmError
from presrm.inspect.run_info import RunInfo, run_info
from presrm.inspect.summaries import HEADLINE_METRICS, IterationSummary, iteration_summaries
from presrm.tui import format as fmt
from presrm.tui.messages import LoadFailed, OverviewLoaded, post_current

if TYPE_CHECKING:
    from presrm.tui.app import InspectorApp

COLUMNS: list[tuple[str, str]] = [
    ("iteration", "iter"),
    ("model", "model"),
    ("accuracy_greedy", "acc greedy"),
    ("accuracy_search", "acc search"),
    ("greedy_gain_vs_m1", "greedy vs start"),
    ("judge_accuracy", "LLM-judge acc"),
    ("likelihood_accuracy", "likelihood acc"),
    ("auroc_min", "AUROC min"),
    ("judge_consistency", "consistency"),
    ("train_accuracy", "train acc"),
    ("trees", "trees"),
    ("nodes", "nodes"),
    ("judgments", "judgments"),
    ("flags", "flags"),
]
PLOTTED = ("accuracy_greedy", "accuracy_search", "judge_accuracy", "auroc_min")


def info_text(info: RunInfo, path: str) -> Text:
    """The run's header lines (all values literal text)."""
    out = Text()
    out.append("run ", style="dim")
    out.append(info.run_id, style="bold")
    out.append("  file ", style="dim")
    out.append(path)
    out.append("  created ", style="dim")
    out.append(info.created_at.strftime("%Y-%m-%d %H:%M") if info.created_at else fmt.DASH)
    out.append("\nmodel ", style="dim")
    out.append(info.model)
    out.append("  task ", style="dim")
    out.append(info.task)
    out.append("  algo ", style="dim")
    out.append(info.algo)
    out.append("  seed ", style="dim")
    out.append(str(info.seed))
    out.append("\n")
    out.append(
        f"{fmt.count(info.n_problems)} problems · {fmt.count(info.n_trees)} trees · {fmt.count(info.n_nodes)} steps"
        f" · {fmt.count(info.n_judgments)} judge calls · {fmt.count(info.n_flags)} flags"
    )
    if info.stages:
        last_it, last_stage = info.stages[-1]
        out.append(f" · last finished stage: {last_stage} of M{last_it}", style="dim")
    return out


def metric_cell(summary: IterationSummary, name: str) -> Text:
    """A metric as a percentage (AUROC as a number, a gain in signed points), with its stored 95 %
    interval where there is one; italic when computed from rows."""
    value = summary.metrics.get(name)
    if name == "auroc_min":
        text = fmt.score(value, 3)
    elif name.startswith("greedy_gain"):
        text = fmt.points(value)
    else:
        text = fmt.pct(value)
    low, high = summary.extra.get(f"{name}_low"), summary.extra.get(f"{name}_high")
    if value is not None:
        text += interval_suffix(low, high)
    return Text(text, style="italic cyan" if name in summary.computed else "", justify="right")


class OverviewPane(Vertical):
    """Run header, iterations table and metric plot."""

    app: InspectorApp

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._computed: dict[int, dict[str, float | None]] = {}

    def compose(self) -> ComposeResult:
        yield Static(Text("loading run…", style="dim"), id="run-info")
        yield DataTable(id="iterations", cursor_type="row", zebra_stripes=True)
        yield Static(Text("loading…", style="dim"), id="overview-note")
        yield PlotextPlot(id="metrics-plot")

    def on_mount(self) -> None:
        table = self.query_one("#iterations", DataTable)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        self.watch(self.app, "generation", self._generation_changed, init=False)
        self.load()

    def _generation_changed(self, _: int) -> None:
        self.load()

    @work(thread=True, exclusive=True, group="overview")
    def load(self, compute_missing: bool = False) -> None:
        """Read the run row and iteration summaries.

        First without computing the metrics that eval_metrics lacks (fast: the first
        screen); when some are missing, :meth:`show` asks again with
        ``compute_missing`` once that screen is drawn. Tree-derived values (train
        accuracy) come once the app's tree index is loaded.
        """
        app = self.app
        try:
            ready = app.index.version is not None
            trees = app.index.table if ready else None
            info = run_info(app.run_file, trees)
            summaries = iteration_summaries(
                app.run_file, trees, compute_missing=compute_missing, cache=self._computed
            )
        except PresrmError as err:
            self.post_message(LoadFailed(str(err)))
            return
        missing = not compute_missing and any(
            v is None for s in summaries for k, v in s.metrics.items() if k in HEADLINE_METRICS
        )
        post_current(self, OverviewLoaded(info, summaries, ready and not missing, missing))

    @on(OverviewLoaded)
    def show(self, message: OverviewLoaded) -> None:
        message.stop()
        self.query_one("#run-info", Static).update(info_text(message.info, self.app.run_file.name))
        table = self.query_one("#iterations", DataTable)
        table.clear()
        for s in message.iterations:
            cells: list[Any] = [Text(str(s.iteration), justify="right"), fmt.plain(s.model_name)]
            cells += [metric_cell(s, name) for name in HEADLINE_METRICS]
            cells += [metric_cell(s, "train_accuracy")]
            cells += [
                Text(fmt.count(v), justify="right") for v in (s.n_trees, s.n_nodes, s.n_judgments, s.n_flags)
            ]
            table.add_row(*cells, key=str(s.iteration))
        note = self.query_one("#overview-note", Static)
        if not message.iterations:
            note.update(
                Text("no iterations recorded yet: the run has not written any rows", style="bold yellow")
            )
        elif not message.complete:
            note.update(
                Text("loading… (metrics missing from eval_metrics and train accuracy follow)", style="dim")
            )
        else:
            note.update(
                Text("cyan italic = computed from the stored rows (eval_metrics lacks it)", style="dim")
            )
        self._plot(message.iterations)
        # Heavier work waits until this screen is drawn: the problems index, missing metrics.
        self.call_after_refresh(self.app.start_index)
        if message.missing:
            self.call_after_refresh(self.load, True)

    def _plot(self, summaries: list[IterationSummary]) -> None:
        plot = self.query_one("#metrics-plot", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("metrics over iterations")
        xs = [s.iteration for s in summaries]
        for name in PLOTTED:
            pts = [
                (x, s.metrics[name])
                for x, s in zip(xs, summaries, strict=True)
                if s.metrics.get(name) is not None
            ]
            if pts:
                plt.plot([p[0] for p in pts], [p[1] for p in pts], label=name, marker="braille")
        if xs:
            plt.xticks([float(x) for x in xs], [f"M{x}" for x in xs])
        plt.ylim(0, 1)
        plot.refresh()
