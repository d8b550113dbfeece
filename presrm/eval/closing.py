"""The table a run ends with: greedy accuracy per level and iteration, with 95 % intervals and the
paired gain over the model the iterations start from, read from the run's eval_metrics."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table
from rich.text import Text

from presrm.store.reader import query_rows

TITLE = (
    "held-out greedy accuracy, % [95 % interval]; paired gain over the start model"
    " (M1, or M0 without a warm-up)"
)
"""Printed above the table (a table's own title wraps to the table's width)."""

_METRICS_SQL = "SELECT iteration, metric, value FROM eval_metrics ORDER BY iteration"
_CONFIG_SQL = "SELECT config_json FROM runs LIMIT 1"


def _level_value(config: dict) -> object:
    """The run's own task level: its curriculum option's value (None where the task has none)."""
    option = config.get("curriculum", {}).get("option", "n_ops")
    return config.get("task_options", {}).get(option)


def _columns(config: dict, suffixes: set[str]) -> list[tuple[str, str]]:
    """(metric suffix, column title) per evaluated level, in the order of the levels; a level the
    curriculum teaches is marked "taught"."""
    curriculum = config.get("curriculum", {})
    option, taught = curriculum.get("option", "n_ops"), set(curriculum.get("levels", []))
    own = _level_value(config)
    levels: list[tuple[object, str]] = [(own, "")] + [
        (_parse(suffix.removeprefix(":").removeprefix(f"{option}=")), suffix) for suffix in suffixes
    ]

    def title(value: object, suffix: str) -> str:
        if value is None:
            return "held-out" if not suffix else suffix.removeprefix(":")
        return f"{option}={value}" + (" taught" if value in taught else "")

    def order(level: tuple[object, str]) -> tuple[int, int, str]:
        """Numeric levels in order; a run's own level without a value first, named levels last."""
        value, suffix = level
        if isinstance(value, int):
            return (1, value, suffix)
        return (0 if not suffix else 2, 0, suffix)

    return [(suffix, title(value, suffix)) for value, suffix in sorted(levels, key=order)]


def _parse(text: str) -> object:
    try:
        return int(text)
    except ValueError:
        return text


def closing_table(run_file: str | Path) -> Table | None:
    """Rows M0, M1, …; a column per evaluated level: accuracy [low, high] and the gain over the start
    model with its interval; where the run evaluated its search too (``eval_search``), a column of
    search accuracy on the run's own level and its paired gain over greedy. None when nothing was
    evaluated."""
    by_iteration: dict[int, dict[str, float]] = {}
    for iteration, metric, value in query_rows(run_file, _METRICS_SQL):
        by_iteration.setdefault(int(iteration), {})[metric] = float(value)
    if not by_iteration:
        return None
    config = json.loads(query_rows(run_file, _CONFIG_SQL)[0][0])
    suffixes = {
        name.removeprefix("accuracy_greedy")
        for metrics in by_iteration.values()
        for name in metrics
        if name.startswith("accuracy_greedy:") and not name.endswith(("_low", "_high"))
    }
    columns = _columns(config, suffixes)
    table = Table()
    table.add_column("model")
    for _, title in columns:
        table.add_column(title, justify="right")
    searched = any("accuracy_search" in metrics for metrics in by_iteration.values())
    if searched:
        own = next(title for suffix, title in columns if suffix == "")
        table.add_column(f"search, {own}; − greedy", justify="right")
    for iteration, metrics in sorted(by_iteration.items()):
        # Text, not markup: "[95.7, 99.5]" must print as written.
        cells = [_cell(metrics, suffix) for suffix, _ in columns]
        if searched:
            cells.append(_with_gain(metrics, "accuracy_search", "search_gain"))
        table.add_row(Text(f"M{iteration}"), *(Text(cell) for cell in cells))
    return table


def _cell(metrics: dict[str, float], suffix: str) -> str:
    return _with_gain(metrics, f"accuracy_greedy{suffix}", f"greedy_gain_vs_m1{suffix}")


def _with_gain(metrics: dict[str, float], accuracy: str, gain_name: str) -> str:
    """``accuracy [low, high]``, then the paired gain ``gain_name`` with its interval where stored."""
    acc = metrics.get(accuracy)
    if acc is None:
        return "-"
    text = f"{100 * acc:.1f}"
    low, high = metrics.get(f"{accuracy}_low"), metrics.get(f"{accuracy}_high")
    if low is not None and high is not None:
        text += f" [{100 * low:.1f}, {100 * high:.1f}]"
    gain = metrics.get(gain_name)
    g_low, g_high = metrics.get(f"{gain_name}_low"), metrics.get(f"{gain_name}_high")
    if gain is not None and g_low is not None and g_high is not None:
        text += f"  {100 * gain:+.1f} [{100 * g_low:+.1f}, {100 * g_high:+.1f}]"
    return text
