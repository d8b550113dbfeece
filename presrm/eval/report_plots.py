"""The report's PNG plots: accuracy and judge quality per iteration, and reliability diagrams."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from presrm.errors import PresrmError
from presrm.eval.evaluate import (
    AGGREGATES,
    reliability,
)
from presrm.metrics import ReliabilityBin


class ReportError(PresrmError):
    """The report cannot be written (output directory not writable, ...)."""


def model_name(info: dict[str, str], iteration: int) -> str:
    return info.get(f"name_{iteration}", f"M{iteration}")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        raise ReportError("the report's plots need matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


ACCURACY_PANELS = (
    (
        "Final-answer accuracy",
        (
            ("accuracy_greedy", "greedy", "o-", "#1f77b4"),
            ("accuracy_search", "step search (self-judged, best of w)", "s-", "#ff7f0e"),
        ),
    ),
    (
        "Held-out pairs: LLM judge and likelihood comparison",
        (
            ("judge_accuracy", "LLM judge, both orders right", "^-", "#2ca02c"),
            ("judge_accuracy_order0", "LLM judge, first order right", "v--", "#9467bd"),
            ("likelihood_accuracy", "likelihood comparison (no LLM judge)", "d:", "#8c564b"),
        ),
    ),
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
        ax.set_xticks(iters, [model_name(info, i) for i in iters])
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


def _draw_series(
    ax: Any,
    summaries: dict[int, dict[str, float]],
    iters: list[int],
    series: Sequence[tuple[str, str, str, str]],
) -> None:
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
            ax.annotate(
                f"{y:.1f}",
                (i, y),
                textcoords="offset points",
                xytext=(0, 8 if above else -9),
                ha="center",
                va="bottom" if above else "top",
                fontsize=8,
                color=color,
            )


def plot_reliability(
    run_file: Path,
    info: dict[str, str],
    iteration: int,
    summary: dict[str, float],
    path: Path,
    n_bins: int = 10,
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
    fig.suptitle(f"Self-score calibration, {model_name(info, iteration)} step-search solutions")
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
    ax.bar(
        [b.lo for b in full],
        [b.accuracy or 0.0 for b in full],
        width=width,
        align="edge",
        color="#1f77b4",
        alpha=0.75,
        edgecolor="black",
        linewidth=0.6,
        label="fraction correct in bin",
    )
    ax.plot(
        [b.mean_score for b in full],
        [b.accuracy for b in full],
        "o",
        color="#d62728",
        markersize=4,
        label="(mean score, fraction correct)",
    )
    for b in full:
        ax.annotate(
            str(b.count),
            (b.lo + width / 2, (b.accuracy or 0.0) + 0.015),
            ha="center",
            va="bottom",
            fontsize=7,
        )
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
