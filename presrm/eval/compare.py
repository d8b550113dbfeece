"""Several run files side by side: the same metrics per run and iteration, with 95 % intervals.

For seeds of one setting, or settings against a control: each run's own report stays where
``presrm report`` writes it, and ``comparison.md`` lines them up (accuracies, paired gains,
self-score AUROC), then gives, for each setting (model, task, trainer) with several runs, the
mean of the last iteration's gain over its start model across its runs.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from presrm.display import interval_suffix
from presrm.eval.flip_report import flip_lines
from presrm.eval.report import ReportError, model_name, run_info_dict, run_summaries, write_report

COLUMNS = (
    ("accuracy_greedy", "greedy"),
    ("accuracy_search", "search"),
    ("search_gain", "search − greedy"),
    ("greedy_gain_vs_m1", "greedy − start model"),
    ("auroc_min", "AUROC min score"),
    ("judge_accuracy", "LLM-judge acc."),
    ("likelihood_accuracy", "likelihood acc."),
    ("paraphrase_accuracy", "paraphrase acc."),
)


def _cell(summary: dict[str, float], metric: str) -> str:
    value = summary.get(metric)
    if value is None:
        return "–"
    if metric.startswith("auroc"):
        return f"{value:.3f}"
    low, high = summary.get(f"{metric}_low"), summary.get(f"{metric}_high")
    text = f"{100 * value:+.1f}" if "gain" in metric else f"{100 * value:.1f}"
    return text + interval_suffix(low, high)


def _task(info: dict[str, str]) -> str:
    """The task with its options (``arith n_ops=3``): runs of one task at two difficulties differ."""
    try:
        options = json.loads(info["task_options"] or "{}")
    except json.JSONDecodeError:
        options = {}
    extra = " ".join(f"{k}={v}" for k, v in sorted(options.items())) if isinstance(options, dict) else ""
    return f"{info['task']} {extra}".strip()


def write_comparison(run_files: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Each run's report in ``out_dir/<run name>/`` and ``out_dir/comparison.md``; returns the latter."""
    out = Path(out_dir)
    names = [Path(f).stem for f in run_files]
    if len(set(names)) != len(names):
        raise ReportError("run files to compare need distinct names (each gets its own report folder)")
    lines = [
        "# presrm runs compared",
        "",
        "Accuracies in % with 95 % intervals; gains are paired on the same problems.",
        "",
    ]
    header = ["run", "setting", "seed", "model", *(title for _, title in COLUMNS)]
    rows: list[list[str]] = []
    last_gains: dict[str, list[float]] = {}
    for run_file, name in zip(run_files, names, strict=True):
        write_report(run_file, out / name)
        info = run_info_dict(Path(run_file))
        summaries = run_summaries(run_file)
        # A control run (train.rft.control) is its own setting, never averaged with the runs it controls.
        algo = info["algo"] + (" control" if info.get("control") == "True" else "")
        setting = " / ".join((info["model"], _task(info), info["judge_mode"] or "auto", algo))
        for it, summary in sorted(summaries.items()):
            rows.append(
                [name, setting, info["seed"], model_name(info, it), *(_cell(summary, m) for m, _ in COLUMNS)]
            )
        gains = [s["greedy_gain_vs_m1"] for _, s in sorted(summaries.items()) if "greedy_gain_vs_m1" in s]
        if gains:
            last_gains.setdefault(setting, []).append(gains[-1])
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines += [
        "",
        "## Last iteration's greedy gain over its start model (M1; M0 without a warm-up), per setting",
        "",
    ]
    if not last_gains:
        lines += ["No run has an iteration after its start model.", ""]
    for setting, gains in last_gains.items():
        spread = f", sd {100 * statistics.stdev(gains):.1f}" if len(gains) > 1 else ""
        lines.append(
            f"- `{setting}`: {len(gains)} run(s), mean {100 * statistics.mean(gains):+.1f} points{spread}"
        )
    lines += flip_lines(run_files, names)
    path = out / "comparison.md"
    try:
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    except OSError as err:
        raise ReportError(f"cannot write {path}: {err.strerror}") from None
    return path
