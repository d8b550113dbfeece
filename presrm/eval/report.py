"""A Markdown report of a run, with PNG plots, recomputed from its stored rows.

``write_report(run_file, out_dir)`` writes ``out_dir/report.md`` and next to it
``accuracy.png`` and ``reliability.png`` (presrm.eval.report_plots).
A plot whose inputs are absent is not drawn; the report says so instead.

The metrics are recomputed with :func:`presrm.eval.evaluate.summarize_iteration`, so the
report is right for old runs too; metrics that only exist as stored
``eval_metrics`` rows (written by something else) are shown as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from presrm.display import interval_suffix
from presrm.eval.evaluate import METRICS, run_iterations, stored_metrics, summarize_iteration
from presrm.eval.judge_metrics import LLM_JUDGE, JudgeRow, judge_table, pair_modes
from presrm.eval.report_plots import ReportError, model_name, plot_accuracy, plot_reliability
from presrm.store.db import open_run

STAGE_ORDER = ("warmup", "search", "train", "eval")
PERCENT_METRICS = {
    "accuracy_greedy",
    "accuracy_search",
    "search_gain",
    "greedy_gain_vs_m1",
    "judge_accuracy",
    "judge_accuracy_order0",
    "likelihood_accuracy",
    "paraphrase_accuracy",
    "check_accuracy",
    "pointwise_accuracy",
    "judge_consistency",
    "judge_step_precision",
    "judge_step_recall",
    "processbench_acc_erroneous",
    "processbench_acc_correct",
}


def run_info_dict(run_file: Path) -> dict[str, str]:
    with open_run(run_file) as con:
        row = con.execute(
            "SELECT run_id, created_at, presrm_version, model, task, algo, seed,"
            " json_extract_string(config_json, '$.judge.mode'), json_extract(config_json, '$.task_options'),"
            " coalesce(json_extract(config_json, '$.train.rft.control')::BOOLEAN, false)"
            " FROM runs LIMIT 1"
        ).fetchone()
        names = dict(
            con.execute(
                "SELECT iteration, model_name FROM iterations WHERE model_name IS NOT NULL"
            ).fetchall()
        )
    keys = (
        "run_id",
        "created_at",
        "presrm_version",
        "model",
        "task",
        "algo",
        "seed",
        "judge_mode",
        "task_options",
        "control",
    )
    info = {k: ("" if v is None else str(v)) for k, v in zip(keys, row or [None] * len(keys), strict=True)}
    info.update({f"name_{int(k)}": str(v) for k, v in names.items()})
    return info


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


def _fmt(metric: str, value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if metric.startswith("n_"):
        return str(int(round(value)))
    if metric in ("search_gain", "greedy_gain_vs_m1"):
        return f"{100 * value:+.1f} pts"
    if metric in PERCENT_METRICS:
        return f"{100 * value:.1f}%"
    return f"{value:.3f}"


def _fmt_with_interval(metric: str, summary: dict[str, float]) -> str:
    """``48.0% [41.2, 54.9]`` where the metric has a stored interval."""
    cell = _fmt(metric, summary.get(metric))
    low, high = summary.get(f"{metric}_low"), summary.get(f"{metric}_high")
    if low is None or high is None or metric not in PERCENT_METRICS:
        return cell
    return cell + interval_suffix(low, high)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right_from: int = 1) -> list[str]:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    seps = ["---" if i < align_right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(esc(h) for h in header) + " |", "| " + " | ".join(seps) + " |"]
    lines += ["| " + " | ".join(esc(c) for c in row) + " |" for row in rows]
    return lines


def _metrics_section(info: dict[str, str], summaries: dict[int, dict[str, float]]) -> list[str]:
    iters = sorted(summaries)
    bounds = {f"{m}_{end}" for m in PERCENT_METRICS for end in ("low", "high")}  # shown beside their metric
    names = [m for m in METRICS if m not in bounds and any(m in summaries[i] for i in iters)]
    extra = sorted({m for i in iters for m in summaries[i]} - set(METRICS))
    rows = []
    for m in names + extra:
        meaning = METRICS.get(m, "(stored metric)") + (" [95 % interval]" if f"{m}_low" in METRICS else "")
        rows.append([m, *(_fmt_with_interval(m, summaries[i]) for i in iters), meaning])
    header = ["metric", *(model_name(info, i) for i in iters), "meaning"]
    lines = ["## Metrics per iteration", ""]
    if not rows:
        return [*lines, "No evaluation rows yet.", ""]
    body = _table(header, rows)
    body[1] = body[1].rsplit("|", 2)[0] + "| --- |"  # left-align the meaning column
    return [
        *lines,
        *body,
        "",
        "`–` = not measured in that iteration (its inputs are absent or the metric is undefined).",
        "",
    ]


def _stages_section(info: dict[str, str], times: dict[int, dict[str, float]]) -> list[str]:
    lines = ["## Wall time per stage (seconds)", ""]
    if not times:
        return [*lines, "No finished stages.", ""]
    seen = {s for per in times.values() for s in per}
    stages = [s for s in STAGE_ORDER if s in seen] + sorted(seen - set(STAGE_ORDER))
    rows = []
    for it in sorted(times):
        per = times[it]
        rows.append(
            [
                model_name(info, it),
                *(f"{per[s]:.1f}" if s in per else "–" for s in stages),
                f"{sum(per.values()):.1f}",
            ]
        )
    total = sum(sum(per.values()) for per in times.values())
    rows.append(
        [
            "**total**",
            *(f"{sum(t.get(s, 0.0) for t in times.values()):.1f}" for s in stages),
            f"**{total:.1f}**",
        ]
    )
    return [*lines, *_table(["iteration", *stages, "total"], rows), ""]


def _judge_section(info: dict[str, str], table: list[JudgeRow]) -> list[str]:
    lines = ["## LLM-judge accuracy on held-out pairs (cf. the paper's Table 3)", ""]
    if not table:
        return [
            *lines,
            "No held-out pairs judged by the LLM judge (`judgments.phase = 'eft_test'`,"
            " `mode = 'pairwise'`) in this run.",
            "",
        ]
    rows = [
        [
            model_name(info, r.iteration),
            str(r.n_pairs),
            _fmt("judge_accuracy", r.accuracy),
            _fmt("judge_accuracy", r.accuracy_order0),
            _fmt("judge_accuracy", r.consistency),
            _fmt("judge_accuracy", r.unparseable),
        ]
        for r in table
    ]
    header = [
        "model",
        "pairs",
        "accuracy (both orders)",
        "accuracy (first order)",
        "consistency",
        "unparseable",
    ]
    note = (
        "A pair is right only when the verdict is right in both presentation orders; an "
        "unparseable or inconsistent verdict counts as wrong. The paper reports 57.2 (M0, 3-shot), "
        "92.8 (M1) and 92.2 (M4) for its 7B model."
    )
    return [*lines, *_table(header, rows), "", note, ""]


_OTHER_MODES = {
    "likelihood": (
        "Likelihood comparison",
        "The policy's own log-probability of each step after the accepted prefix decides the pair"
        " (`judge.mode = 'likelihood'`; no judge prompt, consistent in both orders by design).",
    ),
}


def _other_mode_section(info: dict[str, str], mode: str, table: list[JudgeRow]) -> list[str]:
    """A mode other than the LLM judge on the same held-out pairs: apart from Table 3."""
    if not table:
        return []
    title, how = _OTHER_MODES.get(
        mode, (f"Judge mode `{mode}`", f"`judge.mode = '{mode}'` decides the pair.")
    )
    lines = [f"## {title} on held-out pairs (no LLM judge)", ""]
    rows = [
        [model_name(info, r.iteration), str(r.n_pairs), _fmt("judge_accuracy", r.accuracy)] for r in table
    ]
    note = (
        how
        + " Right only when right in both orders. Not LLM-as-a-judge: not comparable with the paper's Table 3."
    )
    return [*lines, *_table(["model", "pairs", "accuracy (both orders)"], rows), "", note, ""]


def _pointwise_section(info: dict[str, str], summaries: dict[int, dict[str, float]]) -> list[str]:
    """The pointwise judge on held-out steps (judged alone, so not pairs: apart from Table 3)."""
    iters = [i for i in sorted(summaries) if "n_pointwise_steps" in summaries[i]]
    if not iters:
        return []
    rows = [
        [
            model_name(info, i),
            str(int(summaries[i]["n_pointwise_steps"])),
            _fmt("pointwise_accuracy", summaries[i].get("pointwise_accuracy")),
            _fmt("pointwise_auroc", summaries[i].get("pointwise_auroc")),
        ]
        for i in iters
    ]
    note = (
        "Each distinct step of the held-out pairs judged alone (`judge.mode = 'pointwise'`): right when"
        " P(Yes) > 0.5 exactly for the pair's right step. Not a pairwise number: not comparable with the"
        " paper's Table 3."
    )
    lines = ["## Pointwise judge on held-out steps (no pairwise judge)", ""]
    return [*lines, *_table(["model", "steps", "accuracy", "AUROC of P(Yes)"], rows), "", note, ""]


def run_summaries(run_file: str | Path) -> dict[int, dict[str, float]]:
    """Every iteration's metrics: the stored ones, overridden by those recomputed from the rows."""
    stored = stored_metrics(run_file)
    summaries: dict[int, dict[str, float]] = {}
    for it in run_iterations(run_file):
        fresh = {k: float(v) for k, v in summarize_iteration(run_file, it).items() if v is not None}
        summaries[it] = {**stored.get(it, {}), **fresh}  # recomputed values win
    return summaries


def write_report(run_file: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.md`` (plus its PNG plots) for the run in ``run_file``; returns the .md path."""
    run_file = Path(run_file)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ReportError(f"cannot create {out}: {err.strerror}") from None
    info = run_info_dict(run_file)
    iterations = run_iterations(run_file)
    summaries = run_summaries(run_file)
    lines = [f"# presrm run report: {run_file.name}", ""]
    lines += [
        f"- run `{info['run_id']}`, created {info['created_at'][:19]} by presrm {info['presrm_version']}",
        f"- model `{info['model']}`, task `{info['task']}`, trainer `{info['algo']}`, seed {info['seed']}",
        f"- iterations: {', '.join(model_name(info, i) for i in iterations) or 'none'}",
        "",
    ]
    lines += _metrics_section(info, summaries)
    lines += _judge_section(info, judge_table(run_file))
    for mode in pair_modes(run_file):
        if mode != LLM_JUDGE:
            lines += _other_mode_section(info, mode, judge_table(run_file, mode))
    lines += _pointwise_section(info, summaries)
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
        lines += [
            f"Reliability of {model_name(info, with_search[-1])}'s step-search solutions: each bar is the "
            "fraction of correct solutions among those whose self-score falls in the bin; a calibrated "
            "judge follows the diagonal.",
            "",
            f"![reliability diagram]({rel_png.name})",
            "",
        ]
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


__all__ = ["ReportError", "plot_accuracy", "plot_reliability", "run_summaries", "write_report"]
