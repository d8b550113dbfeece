"""Per-iteration evaluation summary, computed from a run file's stored rows.

Everything here reads the run file (read-only, one short connection per call) and
recomputes its numbers from ``evals``, ``judgments`` and ``nodes`` with the SQL
below plus the pure functions of :mod:`presrm.metrics`. Old runs can therefore be
re-summarised with a newer presrm: :func:`recompute_metrics` rewrites their
``eval_metrics`` rows.

Metric definitions (iteration ``i``; a metric whose inputs are absent is left out,
never reported as 0):

accuracy_greedy / accuracy_search
    ``evals`` rows of mode greedy / search: mean of ``correct`` with NULL (no final
    answer) counted as wrong.
search_gain
    accuracy_search - accuracy_greedy (both present).
judge_accuracy
    held-out EFT pairs judged by the LLM judge (``judgments.phase = 'eft_test'``,
    ``mode = 'pairwise'``: the written verdict or its P(A)/P(B), never the likelihood
    comparison), order 0 with
    ``expected`` A/B) matched with their order-1 row (same iteration, node_a/node_b
    swapped). Right only when both orders give the right verdict (the paper's Table 3
    with the consistency rule); unparseable or missing order counts as wrong. Left out
    when the iteration has no order-1 EFT rows at all (see judge_accuracy_order0).
judge_accuracy_order0
    the same pairs judged on their first presentation alone.
likelihood_accuracy
    the same rule for the pairs decided by the likelihood comparison (``mode =
    'likelihood'``: the policy's own log-prob of each step, no judge prompt). Not an
    LLM-as-a-judge number: never set beside the paper's Table 3.
pointwise_accuracy / pointwise_auroc
    the pointwise judge (``mode = 'pointwise'``) on the held-out pairs' distinct steps, each
    judged alone (``expected`` Yes for a pair's right step, No for the other): the fraction
    with P(Yes) > 0.5 exactly when the label is Yes, and the AUROC of P(Yes) against the label.
    Not a pairwise number: never set beside the paper's Table 3.
judge_consistency
    ``judge_pairs`` view, phases train + eval, LLM judge only (``mode = 'pairwise'``; the
    likelihood comparison is consistent by design): fraction of pairs whose two orders name
    the same winner (an unparseable verdict is inconsistent; the view's ``consistent``
    is NULL then, so it is coalesced to false).
auroc_{min,mean,last}, ece_{min,mean,last}
    ``evals`` rows of mode search: the solution's min / mean / last step self-score
    against its final correctness (NULL correct = wrong; rows with a NULL score are
    dropped). ECE uses 10 equal-width bins. The scores are ``soft_score`` (graded): the
    win rate that selects a step is 1.0 on nearly every chosen step, so it cannot rank.
judge_step_auroc / judge_step_precision / judge_step_recall
    every judged node of the iteration (``soft_score`` and ``step_check`` not NULL, all
    phases): AUROC of ``soft_score`` against ``step_check``; "the judge says wrong" =
    ``soft_score < 0.5``, truth = ``NOT step_check``.
processbench_f1
    each tree's chosen path (``chosen AND NOT rolled_back``), trees whose path steps all
    have a step_check and at least one soft_score: predicted first error = the first
    depth with ``soft_score < 0.5`` (None if none), true first error = the first depth
    with ``step_check = false`` (None if none); ProcessBench F1 of the two.
processbench_acc_erroneous / processbench_acc_correct
    the two accuracies behind that F1 (None when their group of paths is empty).
steps_per_solution / tokens_per_step
    greedy ``evals`` rows: mean ``n_steps``; ``sum(n_tokens) / sum(n_steps)``.
n_eval_greedy / n_eval_search / n_eft_pairs / n_likelihood_pairs / n_pointwise_steps / n_judge_pairs /
n_judged_steps / n_paths
    the sample sizes behind the metrics above.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb

from presrm.errors import PresrmError
from presrm.eval.judge_metrics import WRONG_BELOW, judge_metrics
from presrm.eval.judge_metrics import JudgeRow as JudgeRow  # re-exported
from presrm.eval.judge_metrics import judge_table as judge_table  # re-exported
from presrm.eval.significance import INTERVAL_METRICS, add_intervals
from presrm.metrics import (
    ReliabilityBin,
    auroc,
    expected_calibration_error,
    processbench_f1,
    reliability_table,
)
from presrm.run.levels import LEVEL_MODE_PREFIX
from presrm.run.lock import RunLock
from presrm.store.db import open_run
from presrm.store.writer import RunStore


class EvaluationError(PresrmError):
    """An evaluation request names something the run does not have."""


AGGREGATES = ("min", "mean", "last")

METRICS: dict[str, str] = {
    "accuracy_greedy": "final-answer accuracy, greedy decoding",
    "accuracy_search": "final-answer accuracy, best-of-w step search with the self-judge",
    "search_gain": "accuracy_search - accuracy_greedy on the problems both evaluated",
    **INTERVAL_METRICS,
    "judge_accuracy": "held-out pairs the LLM judge (pairwise prompt) gets right in both orders (paper's Table 3)",
    "judge_accuracy_order0": "held-out pairs the LLM judge gets right in their first order",
    "likelihood_accuracy": "held-out pairs where the policy's own log-prob prefers the right step (no LLM judge)",
    "paraphrase_accuracy": "held-out pairs the paraphrase vote gets right in both orders (no LLM judge)",
    "check_accuracy": "held-out pairs the check judge gets right in both orders",
    "pointwise_accuracy": "held-out steps the pointwise judge labels right (P(Yes) > 0.5; not Table 3)",
    "pointwise_auroc": "AUROC of the pointwise judge's P(Yes) on held-out steps vs their labels",
    "judge_consistency": "LLM-judge search judgments whose two orders agree",
    "auroc_min": "AUROC of min step self-score vs final correctness (search)",
    "auroc_mean": "AUROC of mean step self-score vs final correctness (search)",
    "auroc_last": "AUROC of last step self-score vs final correctness (search)",
    "ece_min": "calibration error of min step self-score (search)",
    "ece_mean": "calibration error of mean step self-score (search)",
    "ece_last": "calibration error of last step self-score (search)",
    "judge_step_auroc": "AUROC of each judged step's soft score vs the step checker",
    "judge_step_precision": "steps scored < 0.5 that the step checker rejects",
    "judge_step_recall": "checker-rejected steps scored < 0.5",
    "processbench_f1": "first wrong step on chosen paths: F1 of erroneous/correct accuracy",
    "processbench_acc_erroneous": "paths with a wrong step whose first wrong step the judge names exactly",
    "processbench_acc_correct": "paths with no wrong step that the judge flags nowhere",
    "steps_per_solution": "mean steps per greedy solution",
    "tokens_per_step": "generated tokens per greedy step",
    "n_eval_greedy": "greedy eval problems",
    "n_eval_search": "search eval problems",
    "n_eft_pairs": "held-out pairs judged by the LLM judge",
    "n_likelihood_pairs": "held-out pairs decided by the likelihood comparison",
    "n_paraphrase_pairs": "held-out pairs decided by the paraphrase vote",
    "n_check_pairs": "held-out pairs decided by the check judge",
    "n_pointwise_steps": "held-out steps judged by the pointwise judge",
    "n_judge_pairs": "search judgment pairs (both orders)",
    "n_judged_steps": "judged steps with a step check",
    "n_paths": "chosen paths scored by ProcessBench",
}
"""Every metric :func:`summarize_iteration` can return, in report order, with a one-line meaning."""

# --- SQL ----------------------------------------------------------------------------------

EVAL_MODES_SQL = """
SELECT mode, count(*) AS n, avg(CASE WHEN correct THEN 1.0 ELSE 0.0 END) AS accuracy
FROM evals WHERE iteration = ? GROUP BY mode
"""

LENGTH_SQL = """
SELECT avg(n_steps), sum(n_tokens)::DOUBLE / nullif(sum(n_steps), 0)
FROM evals
WHERE iteration = ? AND mode = 'greedy' AND n_steps IS NOT NULL AND n_tokens IS NOT NULL
"""

SEARCH_SCORES_SQL = """
SELECT min_score, mean_score, last_score, coalesce(correct, false) AS correct
FROM evals WHERE iteration = ? AND mode = 'search'
"""

FIRST_ERROR_SQL = """
SELECT tree_id,
       min(depth) FILTER (WHERE soft_score < ?) AS predicted_first,
       min(depth) FILTER (WHERE NOT step_check) AS true_first
FROM nodes
WHERE iteration = ? AND chosen AND NOT coalesce(rolled_back, false)
GROUP BY tree_id
HAVING count(*) FILTER (WHERE step_check IS NULL) = 0 AND count(soft_score) > 0
ORDER BY tree_id
"""

ITERATIONS_SQL = """
SELECT iteration FROM iterations UNION SELECT iteration FROM evals
UNION SELECT iteration FROM judgments UNION SELECT iteration FROM nodes
UNION SELECT iteration FROM eval_metrics ORDER BY iteration
"""


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def run_iterations(run_file: str | Path) -> list[int]:
    """Every iteration that has any row in the run (iterations, evals, judgments, nodes, eval_metrics)."""
    with open_run(run_file) as con:
        return [int(r[0]) for r in _fetch(con, ITERATIONS_SQL, []) if r[0] is not None]


def summarize_iteration(run_file: str | Path, iteration: int) -> dict[str, float | None]:
    """All metrics of one iteration recomputed from the stored rows (see the module doc).

    Metrics whose inputs are absent, or which are undefined on them (AUROC with one
    class only, precision with nothing flagged, ...), are left out of the dict.
    Raises :class:`EvaluationError` when the run has no row for ``iteration``.
    """
    with open_run(run_file) as con:
        known = [int(r[0]) for r in _fetch(con, ITERATIONS_SQL, []) if r[0] is not None]
        if iteration not in known:
            listed = ", ".join(map(str, known)) or "none"
            raise EvaluationError(f"{run_file}: no rows for iteration {iteration} (iterations: {listed})")
        out: dict[str, float | None] = {}
        _accuracy(con, iteration, out)
        add_intervals(con, iteration, out)
        _calibration(con, iteration, out)
        judge_metrics(con, iteration, out)
        _steps(con, iteration, out)
    return {k: v for k, v in out.items() if v is not None}


def _accuracy(con: duckdb.DuckDBPyConnection, iteration: int, out: dict[str, float | None]) -> None:
    for mode, n, acc in _fetch(con, EVAL_MODES_SQL, [iteration]):
        # greedy:OPTION=LEVEL are a curriculum's held-out levels (presrm.run.levels).
        if mode in ("greedy", "search") or mode.startswith(LEVEL_MODE_PREFIX):
            out[f"accuracy_{mode}"] = float(acc)
            out[f"n_eval_{mode}"] = float(n)
    if "accuracy_greedy" in out and "accuracy_search" in out:
        out["search_gain"] = _sub(out["accuracy_search"], out["accuracy_greedy"])
    steps, tokens_per_step = _fetch(con, LENGTH_SQL, [iteration])[0]
    out["steps_per_solution"] = None if steps is None else float(steps)
    out["tokens_per_step"] = None if tokens_per_step is None else float(tokens_per_step)


def _sub(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _calibration(con: duckdb.DuckDBPyConnection, iteration: int, out: dict[str, float | None]) -> None:
    rows = _fetch(con, SEARCH_SCORES_SQL, [iteration])
    for k, agg in enumerate(AGGREGATES):
        pairs = [(r[k], bool(r[3])) for r in rows if r[k] is not None]
        scores = [p[0] for p in pairs]
        labels = [p[1] for p in pairs]
        out[f"auroc_{agg}"] = auroc(scores, labels)
        out[f"ece_{agg}"] = expected_calibration_error(scores, labels)


def _steps(con: duckdb.DuckDBPyConnection, iteration: int, out: dict[str, float | None]) -> None:
    paths = _fetch(con, FIRST_ERROR_SQL, [WRONG_BELOW, iteration])
    if paths:
        pb = processbench_f1([_int(r[1]) for r in paths], [_int(r[2]) for r in paths])
        out["n_paths"] = float(len(paths))
        out["processbench_f1"] = pb.f1
        # Both halves: a chosen step won its comparisons, so its soft score rarely falls below
        # 0.5 and acc_erroneous (hence F1) is often 0 while acc_correct is near 1.
        out["processbench_acc_erroneous"] = pb.acc_erroneous
        out["processbench_acc_correct"] = pb.acc_correct


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def reliability(
    run_file: str | Path, iteration: int, aggregate: str = "min", n_bins: int = 10
) -> list[ReliabilityBin]:
    """Reliability-diagram bins of the search solutions' ``aggregate`` self-score vs correctness.

    ``aggregate`` is min, mean or last (the evals columns min_score / mean_score /
    last_score). Rows with a NULL score are dropped; NULL correctness counts as wrong.
    Returns ``n_bins`` bins (empty ones included, see :func:`presrm.metrics.reliability_table`).
    """
    if aggregate not in AGGREGATES:
        raise EvaluationError(f"unknown score aggregate {aggregate!r}: use one of {', '.join(AGGREGATES)}")
    if n_bins < 1:
        raise EvaluationError(f"n_bins must be at least 1, got {n_bins}")
    column = f"{aggregate}_score"  # from the fixed list above, never user text
    rows = _with_run(
        run_file,
        f"SELECT {column}, coalesce(correct, false) FROM evals "
        f"WHERE iteration = ? AND mode = 'search' AND {column} IS NOT NULL",
        [iteration],
    )
    return reliability_table([r[0] for r in rows], [bool(r[1]) for r in rows], n_bins)


def _with_run(run_file: str | Path, sql: str, params: Sequence[Any]) -> list[tuple]:
    with open_run(run_file) as con:
        return _fetch(con, sql, params)


def write_summary(store: RunStore, iteration: int, summary: dict[str, float | None]) -> int:
    """Queue ``summary`` as ``eval_metrics`` rows; the store's next flush commits them.

    The same transaction first deletes this iteration's rows of every metric this
    module defines (so a recomputed summary replaces the old one and a metric that is
    now undefined disappears); rows of other metric names are kept. ``None`` values
    are skipped. Returns the number of rows queued.
    """
    names = sorted(set(METRICS) | set(summary))
    placeholders = ", ".join("?" for _ in names)
    store.execute_on_flush(
        f"DELETE FROM eval_metrics WHERE run_id = ? AND iteration = ? AND metric IN ({placeholders})",
        [store.run_id, iteration, *names],
    )
    items = [(k, float(v)) for k, v in summary.items() if v is not None]
    if items:
        values = ", ".join("(?, ?, ?, ?)" for _ in items)
        params: list[Any] = []
        for metric, value in items:
            params += [store.run_id, iteration, metric, value]
        store.execute_on_flush(
            f"INSERT INTO eval_metrics (run_id, iteration, metric, value) VALUES {values}", params
        )
    return len(items)


def recompute_metrics(
    run_file: str | Path, iterations: Iterable[int] | None = None
) -> dict[int, dict[str, float | None]]:
    """Re-summarise ``iterations`` (default: all) from the stored rows and rewrite their eval_metrics.

    For runs written by an older presrm, or after the definitions here changed.
    Iterations with nothing to summarise get no rows. Returns the summaries. It writes, so it
    takes the run's lock: a run still being written is refused (RunBusyError) before anything is
    computed, as a second ``presrm run --resume`` would be.
    """
    lock = RunLock.acquire(run_file)
    try:
        wanted = run_iterations(run_file) if iterations is None else list(iterations)
        summaries = {it: summarize_iteration(run_file, it) for it in wanted}
        store = RunStore.open(run_file)
        for it, summary in summaries.items():
            write_summary(store, it, summary)
        store.flush()
    finally:
        lock.release()
    return summaries


def stored_metrics(run_file: str | Path) -> dict[int, dict[str, float]]:
    """The ``eval_metrics`` rows as ``{iteration: {metric: value}}`` (last row wins on duplicates)."""
    rows = _with_run(run_file, "SELECT iteration, metric, value FROM eval_metrics ORDER BY rowid", [])
    out: dict[int, dict[str, float]] = defaultdict(dict)
    for it, metric, value in rows:
        if value is not None:
            out[int(it)][str(metric)] = float(value)
    return dict(out)
