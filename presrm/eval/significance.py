"""95 % intervals of an iteration's accuracies and paired differences, from the stored evals.

``accuracy_greedy_low`` / ``_high`` (Wilson) bound each accuracy; ``search_gain`` is compared on
the same problems as greedy decoding (paired), and ``greedy_gain_vs_m1`` sets an iteration's greedy
accuracy against that of the model the self-rewarding iterations start from, on the same held-out
problems — the number that says whether they helped. That model is M1 after a warm-up; a run
without one (``warmup.enabled = false``) starts its iterations from M0, so M0 is its baseline (the
name keeps the common case).
"""

from __future__ import annotations

from typing import Any

import duckdb

from presrm.intervals import paired_difference, wilson_interval

_WARMUP_SQL = """
SELECT coalesce(json_extract(config_json, '$.warmup.enabled')::BOOLEAN, true) FROM runs LIMIT 1
"""


def baseline_iteration(con: duckdb.DuckDBPyConnection) -> int:
    """The model the self-rewarding iterations start from: M1 after a warm-up, else M0."""
    rows = con.execute(_WARMUP_SQL).fetchall()
    return 1 if not rows or rows[0][0] else 0


INTERVAL_METRICS: dict[str, str] = {
    "accuracy_greedy_low": "95 % interval of accuracy_greedy (Wilson), lower end",
    "accuracy_greedy_high": "95 % interval of accuracy_greedy (Wilson), upper end",
    "accuracy_search_low": "95 % interval of accuracy_search (Wilson), lower end",
    "accuracy_search_high": "95 % interval of accuracy_search (Wilson), upper end",
    "search_gain_low": "95 % interval of search_gain, paired on the same problems, lower end",
    "search_gain_high": "95 % interval of search_gain, paired on the same problems, upper end",
    "greedy_gain_vs_m1": "accuracy_greedy minus the start model's (M1; M0 without a warm-up) on the same problems",
    "greedy_gain_vs_m1_low": "95 % interval of greedy_gain_vs_m1 (paired), lower end",
    "greedy_gain_vs_m1_high": "95 % interval of greedy_gain_vs_m1 (paired), upper end",
}

_OUTCOMES_SQL = """
SELECT problem_id, coalesce(correct, false) FROM evals WHERE iteration = ? AND mode = ? ORDER BY problem_id
"""


def _outcomes(con: duckdb.DuckDBPyConnection, iteration: int, mode: str) -> dict[Any, bool]:
    return {pid: bool(ok) for pid, ok in con.execute(_OUTCOMES_SQL, [iteration, mode]).fetchall()}


def _paired(a: dict[Any, bool], b: dict[Any, bool]) -> tuple[list[bool], list[bool]]:
    common = sorted(set(a) & set(b))
    return [a[p] for p in common], [b[p] for p in common]


def add_intervals(con: duckdb.DuckDBPyConnection, iteration: int, out: dict[str, float | None]) -> None:
    """Add the interval metrics of ``iteration`` to ``out`` (those whose inputs exist)."""
    by_mode = {mode: _outcomes(con, iteration, mode) for mode in ("greedy", "search")}
    for mode, outcomes in by_mode.items():
        ci = wilson_interval(sum(outcomes.values()), len(outcomes))
        if ci is not None:
            out[f"accuracy_{mode}_low"], out[f"accuracy_{mode}_high"] = ci.low, ci.high
    gain = paired_difference(*_paired(by_mode["search"], by_mode["greedy"]))
    if gain is not None:  # the paired estimate: equal to the difference of accuracies on shared problems
        out["search_gain"] = gain.estimate
        out["search_gain_low"], out["search_gain_high"] = gain.low, gain.high
    baseline = baseline_iteration(con)
    if iteration > baseline:
        vs_m1 = paired_difference(*_paired(by_mode["greedy"], _outcomes(con, baseline, "greedy")))
        if vs_m1 is not None:
            out["greedy_gain_vs_m1"] = vs_m1.estimate
            out["greedy_gain_vs_m1_low"], out["greedy_gain_vs_m1_high"] = vs_m1.low, vs_m1.high
    _level_intervals(con, iteration, baseline, out)


_LEVEL_MODES_SQL = (
    "SELECT DISTINCT mode FROM evals WHERE iteration = ? AND starts_with(mode, 'greedy:') ORDER BY mode"
)


def _level_intervals(
    con: duckdb.DuckDBPyConnection, iteration: int, baseline: int, out: dict[str, float | None]
) -> None:
    """Each held-out level's interval and its paired gain over the start model, named after its
    evals.mode: ``accuracy_greedy:n_ops=4_low``, ``greedy_gain_vs_m1:n_ops=4`` (and ``_low``/``_high``)."""
    for (mode,) in con.execute(_LEVEL_MODES_SQL, [iteration]).fetchall():
        outcomes = _outcomes(con, iteration, mode)
        ci = wilson_interval(sum(outcomes.values()), len(outcomes))
        if ci is not None:
            out[f"accuracy_{mode}_low"], out[f"accuracy_{mode}_high"] = ci.low, ci.high
        if iteration <= baseline:
            continue
        level = mode.removeprefix("greedy:")
        gain = paired_difference(*_paired(outcomes, _outcomes(con, baseline, mode)))
        if gain is not None:
            out[f"greedy_gain_vs_m1:{level}"] = gain.estimate
            out[f"greedy_gain_vs_m1:{level}_low"], out[f"greedy_gain_vs_m1:{level}_high"] = (
                gain.low,
                gain.high,
            )
