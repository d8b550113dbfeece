"""A run's judged steps as datasets TRL's trainers read (Parquet, loadable with ``datasets``).

``trl-stepwise``: TRL's stepwise-supervision type — ``prompt`` (the question), ``completions``
(the steps of an accepted path, verbatim) and ``labels`` (one bool per step) — for training a
process reward model. Optionally one more row per rejected sibling: the accepted steps before it,
then the rejected step. Labels come from

* ``checker``: the task's step checker (``nodes.step_check``); a path with an unchecked step is left out;
* ``self``: the model's own ``self_score`` at least ``threshold`` (an unjudged step, where every
  sample was the same step, counts as accepted, as in rft's selection);
* ``flags``: a person's flags, on the paths where a step was flagged: a flagged step is wrong
  unless its latest flag corrects it to "Yes"; the path's unflagged steps count as right.

``trl-preference``: the step-DPO pairs as TRL's standard preference type — ``prompt`` (the raw
solution prompt and the accepted steps before the pair), ``chosen`` and ``rejected`` (the two
steps, each with the separator that ended it). Both carry ``iteration`` and ``problem_id`` too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from presrm.errors import PresrmError
from presrm.steps import BLOCK, LINE, StepFormat, plain_solution_prompt, render_prefix
from presrm.store.reader import query_rows

LabelSource = Literal["checker", "self", "flags"]

_STEPS_SQL = """
WITH q AS (SELECT run_id, problem_id, any_value(question) AS question FROM problems GROUP BY ALL),
human AS (
  SELECT target_id AS node_id, arg_max(coalesce(corrected_verdict, ''), flag_id) = 'Yes' AS ok
  FROM flags WHERE target = 'node' GROUP BY 1
)
SELECT n.iteration, n.problem_id, n.tree_id, n.depth, n.text, n.self_score, n.step_check, hn.ok,
       r.text, r.self_score, r.step_check, hr.ok, q.question
FROM nodes n
JOIN q ON q.problem_id = n.problem_id AND q.run_id = n.run_id
LEFT JOIN nodes r
  ON r.tree_id = n.tree_id AND r.parent_id IS NOT DISTINCT FROM n.parent_id AND r.expansion = n.expansion
 AND r.rejected
LEFT JOIN human hn ON hn.node_id = n.node_id
LEFT JOIN human hr ON hr.node_id = r.node_id
WHERE n.phase = 'train' AND n.chosen AND NOT n.rolled_back AND (? IS NULL OR n.iteration = ?)
ORDER BY n.tree_id, n.depth, r.node_id
"""
_FORMAT_SQL = "SELECT json_extract_string(config_json, '$.step_format') FROM runs LIMIT 1"


@dataclass(frozen=True)
class Step:
    """A judged step: its text and the three things a label can come from."""

    text: str
    self_score: float | None
    step_check: bool | None
    human: bool | None  # None: not flagged


@dataclass(frozen=True)
class PathRows:
    """One tree's accepted path, with the rejected sibling of each step where there is one."""

    iteration: int
    problem_id: str
    question: str
    steps: list[Step]
    rejected: list[Step | None]


def read_paths(run_file: str | Path, iteration: int | None = None) -> list[PathRows]:
    """The accepted paths of the run's training searches (one iteration, or all)."""
    by_tree: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in query_rows(run_file, _STEPS_SQL, [iteration, iteration]):
        rows = by_tree[row[2]]
        if not rows or rows[-1][3] != row[3]:  # one rejected sibling per step
            rows.append(row)
    out = []
    for rows in by_tree.values():
        steps = [Step(r[4], r[5], r[6], r[7]) for r in rows]
        rejected = [None if r[8] is None else Step(r[8], r[9], r[10], r[11]) for r in rows]
        out.append(PathRows(int(rows[0][0]), str(rows[0][1]), str(rows[0][12]), steps, rejected))
    return out


def step_label(step: Step, source: LabelSource, threshold: float, *, accepted: bool = True) -> bool | None:
    """The step's label from ``source`` (None: that source has none for it). An unflagged step is
    right on an accepted path and unlabeled as a rejected sibling (no person vouched for it)."""
    if source == "checker":
        return step.step_check
    if source == "self":
        return step.self_score is None or step.self_score >= threshold
    if step.human is None:
        return True if accepted else None
    return step.human


def stepwise_rows(
    paths: Sequence[PathRows], source: LabelSource, *, threshold: float = 0.5, with_rejected: bool = False
) -> list[dict[str, Any]]:
    """TRL stepwise-supervision rows (see the module doc)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        if source == "flags" and not any(
            s is not None and s.human is not None for s in [*path.steps, *path.rejected]
        ):
            continue  # no person looked at this path
        labels = [step_label(s, source, threshold) for s in path.steps]
        candidates = [(path.steps, labels)]
        if with_rejected:
            for i, rej in enumerate(path.rejected):
                if rej is not None:
                    candidates.append(
                        (
                            [*path.steps[:i], rej],
                            [*labels[:i], step_label(rej, source, threshold, accepted=False)],
                        )
                    )
        for steps, step_labels in candidates:
            if any(label is None for label in step_labels):
                continue  # a step without a label of this source
            rows.append(
                {
                    "prompt": path.question,
                    "completions": [s.text for s in steps],
                    "labels": step_labels,
                    "iteration": path.iteration,
                    "problem_id": path.problem_id,
                }
            )
    return rows


def step_format(run_file: str | Path, paths: Sequence[PathRows]) -> StepFormat:
    """The run's step format; ``auto`` (decided by the model) is read off the stored steps."""
    ((stored,),) = query_rows(run_file, _FORMAT_SQL)
    if stored in ("line", "block", "header"):
        return StepFormat(stored)
    multiline = any("\n" in s.text for p in paths for s in p.steps)
    return BLOCK if multiline else LINE


def preference_rows(paths: Sequence[PathRows], fmt: StepFormat) -> list[dict[str, Any]]:
    """TRL standard preference rows, one per step pair (see the module doc)."""
    sep = fmt.separator
    rows: list[dict[str, Any]] = []
    for path in paths:
        prompt = plain_solution_prompt(path.question)
        for i, (step, rej) in enumerate(zip(path.steps, path.rejected, strict=True)):
            if rej is None or rej.text.strip() == step.text.strip():
                continue
            rows.append(
                {
                    "prompt": render_prefix(prompt, [s.text for s in path.steps[:i]], fmt),
                    "chosen": step.text + sep,
                    "rejected": rej.text + sep,
                    "iteration": path.iteration,
                    "problem_id": path.problem_id,
                }
            )
    return rows


def export_trl(
    run_file: str | Path,
    out: str | Path,
    kind: Literal["trl-stepwise", "trl-preference"],
    *,
    labels: LabelSource = "checker",
    threshold: float = 0.5,
    with_rejected: bool = False,
    iteration: int | None = None,
) -> tuple[Path, int]:
    """Write one Parquet file of ``kind``; returns its path and row count."""
    paths = read_paths(run_file, iteration)
    if not paths:
        raise PresrmError(f"{run_file}: no accepted paths in its training searches: nothing to export")
    if kind == "trl-preference":
        rows = preference_rows(paths, step_format(run_file, paths))
        why = "no step pair (accepted and rejected step) in the training searches"
    else:
        rows = stepwise_rows(paths, labels, threshold=threshold, with_rejected=with_rejected)
        why = {
            "checker": "no path whose every step the task's step checker judged: use --labels self or flags",
            "self": "no accepted path",
            "flags": "no flagged step on an accepted path: flag steps in presrm inspect (f)",
        }[labels]
    if not rows:
        raise PresrmError(f"{run_file}: {why}")
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), target)
    return target, len(rows)
