"""Per-iteration summaries: the stored metrics, recomputed where a finished iteration lacks them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from presrm.errors import PresrmError
from presrm.store.db import open_run

HEADLINE_METRICS: tuple[str, ...] = (
    "accuracy_greedy",
    "accuracy_search",
    "greedy_gain_vs_m1",
    "judge_accuracy",
    "likelihood_accuracy",
    "auroc_min",
    "judge_consistency",
)
"""Per-iteration metrics the overview shows (definitions: presrm.eval.evaluate). judge_accuracy is
the LLM judge's (the paper's Table 3); likelihood_accuracy the likelihood comparison's (no judge)."""


@dataclass(frozen=True)
class IterationSummary:
    """One model of the chain: headline metrics (stored, or computed from rows) and counts."""

    iteration: int
    model_name: str
    finished: bool
    metrics: dict[str, float | None]
    """HEADLINE_METRICS plus train_accuracy; None when absent and not computable."""
    computed: frozenset[str]
    """Metrics that eval_metrics lacked and were computed from the stored rows."""
    extra: dict[str, float]
    """Other eval_metrics rows of this iteration."""
    n_trees: int
    n_nodes: int
    n_judgments: int
    n_flags: int


def iteration_summaries(
    path: str | Path,
    trees: pa.Table | None = None,
    *,
    compute_missing: bool = True,
    cache: dict[int, dict[str, float | None]] | None = None,
) -> list[IterationSummary]:
    """Per iteration: the stored eval_metrics, counts, and train accuracy.

    A headline metric that eval_metrics lacks (a run still evaluating, an older run)
    is computed from the stored rows with :func:`presrm.eval.evaluate.summarize_iteration`
    (the same definitions the loop uses) when ``compute_missing``; it is then listed
    in ``computed``. train_accuracy (share of training-search trees whose accepted
    solution ends in a right answer; unfinished = wrong) needs ``trees``, a tree
    summary table; it is None without one. ``cache`` (iteration -> computed metrics)
    keeps the computations of finished iterations across calls, and is used even
    when ``compute_missing`` is False.
    """
    with open_run(path) as con:
        its = con.execute(
            "SELECT iteration, any_value(model_name), bool_and(finished_at IS NOT NULL) FROM iterations"
            " GROUP BY iteration"
        ).fetchall()
        metric_rows = con.execute("SELECT iteration, metric, value FROM eval_metrics").fetchall()
        if trees is None:
            node_rows = con.execute(
                "SELECT iteration, count(DISTINCT tree_id), count(*) FROM nodes GROUP BY iteration"
            ).fetchall()
            judgment_rows = con.execute(
                "SELECT iteration, count(*) FROM judgments WHERE tree_id IS NOT NULL GROUP BY iteration"
            ).fetchall()
            flag_rows = con.execute(
                "SELECT iteration, count(*) FROM ("
                " SELECT n.iteration FROM flags f JOIN nodes n ON f.target = 'node' AND n.node_id = f.target_id"
                " UNION ALL SELECT j.iteration FROM flags f JOIN judgments j"
                " ON f.target = 'judgment' AND j.judgment_id = f.target_id) GROUP BY iteration"
            ).fetchall()
        else:  # the same counts from the tree summaries, without scanning the file
            grouped = (
                trees.group_by("iteration")
                .aggregate([("tree_id", "count"), ("n_nodes", "sum"), ("n_judgments", "sum")])
                .to_pylist()
            )
            node_rows = [(r["iteration"], r["tree_id_count"], r["n_nodes_sum"]) for r in grouped]
            judgment_rows = [(r["iteration"], r["n_judgments_sum"]) for r in grouped]
            flag_sums = trees.group_by("iteration").aggregate([("n_flags", "sum")]).to_pylist()
            flag_rows = [(r["iteration"], r["n_flags_sum"]) for r in flag_sums if r["n_flags_sum"]]
    stored: dict[int, dict[str, float]] = {}
    for it, metric, value in metric_rows:
        if value is not None and not math.isnan(float(value)):
            stored.setdefault(int(it), {})[str(metric)] = float(value)
    names = {int(r[0]): (str(r[1] or f"M{r[0]}"), bool(r[2])) for r in its}
    nodes = {int(r[0]): (int(r[1]), int(r[2])) for r in node_rows}
    judgments = {int(r[0]): int(r[1]) for r in judgment_rows}
    flags = {int(r[0]): int(r[1]) for r in flag_rows}
    train_acc = _train_accuracy(trees) if trees is not None else {}
    iterations = sorted(set(names) | set(stored) | set(nodes) | set(judgments))
    out: list[IterationSummary] = []
    for it in iterations:
        have = stored.get(it, {})
        metrics: dict[str, float | None] = {name: have.get(name) for name in HEADLINE_METRICS}
        computed: set[str] = set()
        missing = [name for name, value in metrics.items() if value is None]
        finished_it = names.get(it, ("", False))[1]
        cached = cache is not None and finished_it and it in cache
        if missing and (compute_missing or cached):
            if cache is not None and cached:
                fresh = cache[it]
            else:
                fresh = _summarize(path, it)
                if cache is not None and finished_it:
                    cache[it] = fresh
            for name in missing:
                if fresh.get(name) is not None:
                    metrics[name] = fresh[name]
                    computed.add(name)
        metrics["train_accuracy"] = train_acc.get(it)
        model_name, finished = names.get(it, (f"M{it}", False))
        n_trees, n_nodes = nodes.get(it, (0, 0))
        out.append(
            IterationSummary(
                iteration=it,
                model_name=model_name,
                finished=finished,
                metrics=metrics,
                computed=frozenset(computed),
                extra={k: v for k, v in have.items() if k not in HEADLINE_METRICS},
                n_trees=n_trees,
                n_nodes=n_nodes,
                n_judgments=judgments.get(it, 0),
                n_flags=flags.get(it, 0),
            )
        )
    return out


def _summarize(path: str | Path, iteration: int) -> dict[str, float | None]:
    # Imported here: the store layer does not depend on the evaluation code at import time.
    from presrm.eval.evaluate import summarize_iteration

    try:
        return summarize_iteration(path, iteration)
    except PresrmError:
        return {}


def _train_accuracy(trees: pa.Table) -> dict[int, float]:
    """Per iteration: mean correctness of the training-search trees (unfinished = wrong)."""
    train = trees.filter(pc.equal(trees.column("phase"), "train"))
    if train.num_rows == 0:
        return {}
    right = pc.cast(pc.fill_null(train.column("correct"), False), pa.float64())
    grouped = pa.table({"iteration": train.column("iteration"), "right": right}).group_by("iteration")
    return {
        int(r["iteration"]): float(r["right_mean"])
        for r in grouped.aggregate([("right", "mean")]).to_pylist()
    }
