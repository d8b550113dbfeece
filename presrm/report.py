"""A Markdown report of a run, with PNG plots, recomputed from its stored rows.

``write_report(run_file, out_dir)`` writes ``out_dir/report.md`` and next to it
``accuracy.png`` (accuracy greedy / search and judge accuracy per iteration) and
``reliability.png`` (reliability diagram of the last iteration's search solutions).
A plot whose inputs are absent is not drawn; the report says so instead.

The metrics are recomputed with :func:`presrm.evaluate.summarize_iteration`, so the
report is right for old runs too; metrics that only exist as stored
``eval_metrics`` rows (written by something else) are shown as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from presrm.errors import PresrmError
from presrm.evaluate import (
    AGGREGATES,
    METRICS,
    JudgeRow,
    judge_table,
    reliability,
    run_iterations,
    stored_metrics,
    summarize_iteration,
)
from presrm.metrics import ReliabilityBin
from presrm.store.db import open_run

STAGE_ORDER = ("warmup", "search", "train", "eval")
PERCENT_METRICS = {
    "accuracy_greedy", "accuracy_search", "search_gain", "judge_accuracy", "judge_accuracy_order0",
    "judge_consistency", "judge_step_precision", "judge_step_recall", "processbench_acc_erroneous",
    "processbench_acc_correct",
}


class ReportError(PresrmError):
    """The report cannot be written (output directory not writable, ...)."""


# --- data ---------------------------------------------------------------------------------


def _run_info(run_file: Path) -> dict[str, str]:
    with open_run(run_file) as con:
        row = con.execute("SELECT run_id, created_at, presrm_version, model, task, algo, seed FROM runs LIMIT 1").fetchone()
        names = dict(con.execute("SELECT iteration, model_name FROM iterations WHERE model_name IS NOT NULL").fetchall())
    keys = ("run_id", "created_at", "presrm_version", "model", "task", "algo", "seed")
    info = {k: ("" if v is None else str(v)) for k, v in zip(keys, row or [None] * len(keys), strict=True)}
    info.update({f"name_{int(k)}": str(v) for k, v in names.items()})
    return info


def _model_name(info: dict[str, str], iteration: int) -> str:
    return info.get(f"name_{iteration}", f"M{iteration}")


def _stage_times(run_file: Path) -> dict[int, dict[str, float]]:
    """Wall seconds per (iteration, stage), summed over repeated rows (a resumed stage)."""
    with open_run(run_file) as con:
        rows = con.execute(
            "SELECT iteration, stage, sum(wall_s) FROM stages GROUP BY iteration, stage ORDER BY iteration"
        ).fetchall()
    out: dict[int, dict[str, float]] = {}
    for it, stage, wall in rows:
        out.setdefault(int(it), {})[str(stage)] = float(wall or 0.0)
    return out


# --- formatting ---------------------------------------------------------------------------


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric.startswith("n_"):
        return str(int(round(value)))
    if metric == "search_gain":
        return f"{100 * value:+.1f} pts"
    if metric in PERCENT_METRICS:
        return f"{100 * value:.1f}%"
    return f"{value:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right_from: int = 1) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    seps = ["---" if i < align_right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "| " + " | ".join(seps) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def _metrics_section(info: dict[str, str], summaries: dict[int, dict[str, float]]) -> list[str]:
    iters = sorted(summaries)
    names = [m for m in METRICS if any(m in summaries[i] for i in iters)]
    extra = sorted({m for i in iters for m in summaries[i]} - set(METRICS))
    rows = []
    for m in names + extra:
        rows.append([m, *(_fmt(m, summaries[i].get(m)) for i in iters), METRICS.get(m, "(stored metric)")])
    header = ["metric", *(_model_name(info, i) for i in iters), "meaning"]
    lines = ["## Metrics per iteration", ""]
    if not rows:
        return [*lines, "No evaluation rows yet.", ""]
    body = _table(header, rows)
    body[1] = body[1].rsplit("|", 2)[0] + "| --- |"  # left-align the meaning column
    return [*lines, *body, "", "`–` = not measured in that iteration (its inputs are absent or the metric is undefined).", ""]


def _stages_section(info: dict[str, str], times: dict[int, dict[str, float]]) -> list[str]:
    lines = ["## Wall time per stage (seconds)", ""]
    if not times:
        return [*lines, "No finished stages.", ""]
    seen = {s for per in times.values() for s in per}
    stages = [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))
    rows = []
    for it in sorted(times):
        per = times[it]
        rows.append([_model_name(info, it), *(f"{per[s]:.1f}" if s in per else "–" for s in stages),
                     f"{sum(per.values()):.1f}"])
    total = sum(sum(per.values()) for per in times.values())
    rows.append(["**total**", *(f"{sum(t.get(s, 0.0) for t in times.values()):.1f}" for s in stages),
                 f"**{total:.1f}**"])
    return [*lines, *_table(["iteration", *stages, "total"], rows), ""]


def _judge_section(info: dict[str, str], table: list[JudgeRow]) -> list[str]:
    lines = ["## Judge accuracy on held-out pairs (cf. the paper's Table 3)", ""]
    if not table:
        return [*lines, "No held-out judge pairs (`judgments.phase = 'eft_test'`) in this run.", ""]
    rows = [
        [
            _model_name(info, r.iteration),
            str(r.n_pairs),
            _fmt("judge_accuracy", r.accuracy),
            _fmt("judge_accuracy", r.accuracy_order0),
            _fmt("judge_accuracy", r.consistency),
            _fmt("judge_accuracy", r.unparseable),
        ]
        for r in table
    ]
    header = ["model", "pairs", "accuracy (both orders)", "accuracy (first order)", "consistency", "unparseable"]
    note = (
        "A pair is right only when the verdict is right in both presentation orders; an "
        "unparseable or inconsistent verdict counts as wrong. The paper reports 57.2 (M0, 3-shot), "
        "92.8 (M1) and 92.2 (M4) for its 7B model."
    )
    return [*lines, *_table(header, rows), "", note, ""]


# --- plots --------------------------------------------------------------------------------


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise ReportError("the report's plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


ACCURACY_PANELS = (
    ("Final-answer accuracy", (
        ("accuracy_greedy", "greedy", "o-", "#1f77b4"),
        ("accuracy_search", "step search (self-judged, best of w)", "s-", "#ff7f0e"),
    )),
    ("Judge accuracy on held-out pairs", (
        ("judge_accuracy", "both orders right", "^-", "#2ca02c"),
        ("judge_accuracy_order0", "first order right", "v--", "#9467bd"),
    )),
)


def plot_accuracy(info: dict[str, str], summaries: dict[int, dict[str, float]], path: Path) -> Path | None:
    """Accuracy (greedy, search) and judge accuracy per iteration, in percent; None when no data."""
    iters = sorted(summaries)
    metrics = [m for _, series in ACCURACY_PANELS for m, *_ in series]
    if not any(m in summaries[i] for i in iters for m in metrics):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=110, sharey=True)
    for ax, (title, series) in zip(axes, ACCURACY_PANELS, strict=True):
        _draw_series(ax, summaries, iters, series)
        ax.set_xticks(iters, [_model_name(info, i) for i in iters])
        ax.set_xlim(min(iters) - 0.4, max(iters) + 0.4)
        ax.set_ylim(-4, 112)
        ax.set_yticks(range(0, 101, 20))
        ax.set_xlabel("model (iteration)")
        ax.set_title(title, fontsize=11)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=9, frameon=False)
    axes[0].set_ylabel("percent")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw_series(ax: Any, summaries: dict[int, dict[str, float]], iters: list[int],
                 series: Sequence[tuple[str, str, str, str]]) -> None:
    """Lines with value labels; at each x the higher value is labelled above, the lower below."""
    for metric, label, style, color in series:
        pts = [(i, 100 * summaries[i][metric]) for i in iters if metric in summaries[i]]
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, style, color=color, label=label, linewidth=2, markersize=7)
        else:  # keep the legend entry: the metric was not measured
            ax.plot([], [], style, color=color, label=f"{label} (not measured)")
    for i in iters:
        here = sorted((100 * summaries[i][m], color) for m, _, _, color in series if m in summaries[i])
        for rank, (y, color) in enumerate(here):
            above = rank == len(here) - 1
            ax.annotate(f"{y:.1f}", (i, y), textcoords="offset points", xytext=(0, 8 if above else -9),
                        ha="center", va="bottom" if above else "top", fontsize=8, color=color)


def plot_reliability(
    run_file: Path, info: dict[str, str], iteration: int, summary: dict[str, float], path: Path, n_bins: int = 10
) -> Path | None:
    """Reliability diagrams (min / mean / last step self-score) of one iteration's search solutions.

    ``summary`` is the iteration's metrics (for the AUROC in each panel's title).
    Returns None (and draws nothing) when no search solution has a score.
    """
    panels = {agg: reliability(run_file, iteration, agg, n_bins) for agg in AGGREGATES}
    if not any(b.count for bins in panels.values() for b in bins):
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(AGGREGATES), figsize=(12, 4.8), dpi=110, sharey=True)
    for ax, (agg, bins) in zip(axes, panels.items(), strict=True):
        _draw_reliability(ax, agg, bins, summary.get(f"auroc_{agg}"))
    axes[0].set_ylabel("fraction of solutions correct")
    fig.suptitle(f"Self-score calibration, {_model_name(info, iteration)} step-search solutions")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def _draw_reliability(ax: Any, agg: str, bins: list[ReliabilityBin], auc: float | None) -> None:
    width = bins[0].hi - bins[0].lo
    full = [b for b in bins if b.count]
    n = sum(b.count for b in full)
    ax.plot([0, 1], [0, 1], "--", color="grey", linewidth=1, label="perfect calibration")
    ax.bar([b.lo for b in full], [b.accuracy or 0.0 for b in full], width=width, align="edge",
           color="#1f77b4", alpha=0.75, edgecolor="black", linewidth=0.6, label="fraction correct in bin")
    ax.plot([b.mean_score for b in full], [b.accuracy for b in full], "o", color="#d62728", markersize=4,
            label="(mean score, fraction correct)")
    for b in full:
        ax.annotate(str(b.count), (b.lo + width / 2, (b.accuracy or 0.0) + 0.015), ha="center", va="bottom",
                    fontsize=7)
    title = f"{agg} step score: ECE {_ece_from_bins(bins):.3f}"
    if auc is not None:
        title += f", AUROC {auc:.3f}"
    ax.set_title(f"{title}\n{n} solutions (bar labels: solutions per bin)", fontsize=9)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(0, 1.12)
    ax.set_yticks([0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_xlabel(f"{agg} self-score of the solution")
    ax.grid(alpha=0.3)


def _ece_from_bins(bins: list[ReliabilityBin]) -> float:
    """ECE from the bins themselves (the same sum as :func:`presrm.metrics.expected_calibration_error`)."""
    n = sum(b.count for b in bins)
    return sum(b.count / n * abs((b.accuracy or 0.0) - (b.mean_score or 0.0)) for b in bins if b.count)


# --- the report ---------------------------------------------------------------------------


def write_report(run_file: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.md`` (plus its PNG plots) for the run in ``run_file``; returns the .md path."""
    run_file = Path(run_file)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"cannot create {out}: {err.strerror}") from None
    info = _run_info(run_file)
    iterations = run_iterations(run_file)
    stored = stored_metrics(run_file)
    summaries: dict[int, dict[str, float]] = {}
    for it in iterations:
        fresh = {k: float(v) for k, v in summarize_iteration(run_file, it).items() if v is not None}
        summaries[it] = {**stored.get(it, {}), **fresh}  # recomputed values win
    lines = [f"# presrm run report: {run_file.name}", ""]
    lines += [f"- run `{info['run_id']}`, created {info['created_at'][:19]} by presrm {info['presrm_version']}",
              f"- model `{info['model']}`, task `{info['task']}`, trainer `{info['algo']}`, seed {info['seed']}",
              f"- iterations: {', '.join(_model_name(info, i) for i in iterations) or 'none'}", ""]
    lines += _metrics_section(info, summaries)
    lines += _judge_section(info, judge_table(run_file))
    lines += _stages_section(info, _stage_times(run_file))
    lines += ["## Plots", ""]
    acc_png = plot_accuracy(info, summaries, out / "accuracy.png") if summaries else None
    lines += [f"![accuracy per iteration]({acc_png.name})" if acc_png else "No accuracy to plot.", ""]
    with_search = [i for i in iterations if summaries[i].get("n_eval_search")]
    rel_png = None
    if with_search:
        last = with_search[-1]
        rel_png = plot_reliability(run_file, info, last, summaries[last], out / "reliability.png")
    if rel_png:
        lines += [f"Reliability of {_model_name(info, with_search[-1])}'s step-search solutions: each bar is the "
                  "fraction of correct solutions among those whose self-score falls in the bin; a calibrated "
                  "judge follows the diagonal.", "", f"![reliability diagram]({rel_png.name})", ""]
    else:
        lines += ["No scored step-search solutions: no reliability diagram.", ""]
    for stale in ("accuracy.png", "reliability.png"):  # from an earlier report of more data
        if stale not in {p.name for p in (acc_png, rel_png) if p}:
            (out / stale).unlink(missing_ok=True)
    path = out / "report.md"
    try:
        path.write_text("\n".join(lines), encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot write {path}: {err.strerror}") from None
    return path


__all__ = ["ReportError", "plot_accuracy", "plot_reliability", "write_report"]
