"""Judge metrics from stored rows: held-out pair accuracy per judge mode, search consistency.

Only the LLM-as-a-judge (``judgments.mode = 'pairwise'``, the paper's prompt) gives
``judge_accuracy`` — the number set beside the paper's Table 3. Every other mode that
decides held-out pairs gets its own ``<mode>_accuracy`` on the same pairs: the likelihood
comparison (``mode = 'likelihood'``: the policy's own log-prob of each step, no judge
prompt) ``likelihood_accuracy``, and no consistency (it is consistent by design). The
pointwise judge (``mode = 'pointwise'``) is measured on held-out steps, not pairs:
``pointwise_accuracy`` (P(Yes) > 0.5 against the step's label) and ``pointwise_auroc``.
Definitions: presrm.eval.evaluate's module doc.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from presrm.metrics import auroc, judge_accuracy, judge_step_detection
from presrm.store.db import open_run

LLM_JUDGE = "pairwise"
"""The judgments.mode of the written [[A]]/[[B]] verdict (LLM-as-a-judge, the paper's Table 3)."""
LIKELIHOOD = "likelihood"
"""The likelihood comparison's judgments.mode (not an LLM judge)."""
POINTWISE = "pointwise"
"""The pointwise judge's judgments.mode: P(Yes) to "is this next step correct?"."""
WRONG_BELOW = 0.5
"""A judged step with ``soft_score`` below this counts as "the judge says wrong"."""

EFT_MODES_SQL = """
SELECT DISTINCT mode FROM judgments
WHERE phase = 'eft_test' AND node_b IS NOT NULL AND (? IS NULL OR iteration = ?) ORDER BY mode
"""

# Order-0 rows of held-out pairs of one judge mode, with their order-1 partner when it exists.
EFT_PAIRS_SQL = """
SELECT f.iteration, f.verdict AS v0, s.verdict AS v1, f.expected, s.judgment_id IS NOT NULL AS has_order1
FROM judgments f
LEFT JOIN judgments s
  ON s.run_id = f.run_id AND s.iteration = f.iteration AND s.phase = f.phase AND s.mode = f.mode
 AND s."order" = 1 AND s.node_a = f.node_b AND s.node_b = f.node_a
WHERE f.phase = 'eft_test' AND f.mode = ? AND f."order" = 0 AND f.expected IN ('A', 'B')
  AND (? IS NULL OR f.iteration = ?)
ORDER BY f.iteration, f.judgment_id
"""

# The pointwise judge's held-out steps: P(Yes) and the step's label.
EFT_POINTS_SQL = """
SELECT p_a, expected = 'Yes' FROM judgments
WHERE phase = 'eft_test' AND mode = 'pointwise' AND expected IN ('Yes', 'No') AND p_a IS NOT NULL
  AND iteration = ?
"""

CONSISTENCY_SQL = """
SELECT count(*), avg(CASE WHEN coalesce(consistent, false) THEN 1.0 ELSE 0.0 END)
FROM judge_pairs WHERE iteration = ? AND phase IN ('train', 'eval') AND mode = ?
"""

STEP_DETECTION_SQL = """
SELECT soft_score < ? AS says_wrong, NOT step_check AS is_wrong, soft_score
FROM nodes WHERE iteration = ? AND soft_score IS NOT NULL AND step_check IS NOT NULL
"""


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> list[tuple]:
    return con.execute(sql, list(params)).fetchall()


def judge_metrics(con: duckdb.DuckDBPyConnection, iteration: int, out: dict[str, float | None]) -> None:
    """Add the judge metrics of ``iteration`` to ``out``."""
    eft = _fetch(con, EFT_PAIRS_SQL, [LLM_JUDGE, iteration, iteration])
    if eft:
        out["n_eft_pairs"] = float(len(eft))
        v0 = [r[1] for r in eft]
        expected = [r[3] for r in eft]
        out["judge_accuracy_order0"] = sum(a == e for a, e in zip(v0, expected, strict=True)) / len(eft)
        if any(r[4] for r in eft):  # the iteration judged both orders
            out["judge_accuracy"] = judge_accuracy(v0, [r[2] for r in eft], expected)
    for (mode,) in _fetch(con, EFT_MODES_SQL, [iteration, iteration]):
        other = _fetch(con, EFT_PAIRS_SQL, [mode, iteration, iteration]) if mode != LLM_JUDGE else []
        if other and any(r[4] for r in other):  # not the LLM judge: its own name, both orders
            out[f"n_{mode}_pairs"] = float(len(other))
            out[f"{mode}_accuracy"] = judge_accuracy(
                [r[1] for r in other], [r[2] for r in other], [r[3] for r in other]
            )
    points = _fetch(con, EFT_POINTS_SQL, [iteration])
    if points:
        out["n_pointwise_steps"] = float(len(points))
        out["pointwise_accuracy"] = sum((p > 0.5) == bool(y) for p, y in points) / len(points)
        out["pointwise_auroc"] = auroc([float(p) for p, _ in points], [bool(y) for _, y in points])
    n_pairs, consistency = _fetch(con, CONSISTENCY_SQL, [iteration, LLM_JUDGE])[0]
    if n_pairs:
        out["n_judge_pairs"] = float(n_pairs)
        out["judge_consistency"] = float(consistency)
    det_rows = _fetch(con, STEP_DETECTION_SQL, [WRONG_BELOW, iteration])
    if det_rows:
        det = judge_step_detection([bool(r[0]) for r in det_rows], [bool(r[1]) for r in det_rows])
        out["n_judged_steps"] = float(len(det_rows))
        out["judge_step_precision"] = det.precision
        out["judge_step_recall"] = det.recall
        out["judge_step_auroc"] = auroc([float(r[2]) for r in det_rows], [not r[1] for r in det_rows])


@dataclass(frozen=True)
class JudgeRow:
    """One line of the held-out judge-accuracy table of one judge mode, for one iteration."""

    iteration: int
    n_pairs: int
    accuracy: float | None  # both orders right; None when only one order was judged
    accuracy_order0: float
    consistency: float | None  # both orders name the same candidate
    unparseable: float  # fraction of stored verdicts (both orders) that could not be read


def pair_modes(run_file: str | Path) -> list[str]:
    """The judge modes of the run's held-out pair judgments, the LLM judge's first."""
    with open_run(run_file) as con:
        modes = [str(r[0]) for r in _fetch(con, EFT_MODES_SQL, [None, None])]
    return sorted(modes, key=lambda m: (m != LLM_JUDGE, m))


def judge_table(run_file: str | Path, mode: str = LLM_JUDGE) -> list[JudgeRow]:
    """Held-out pair accuracy per iteration for judgments of ``mode`` (default: the LLM judge,
    the paper's Table 3); iterations without such eft_test pairs are omitted."""
    with open_run(run_file) as con:
        rows = _fetch(con, EFT_PAIRS_SQL, [mode, None, None])
    by_iter: dict[int, list[tuple]] = defaultdict(list)
    for r in rows:
        by_iter[int(r[0])].append(r)
    table: list[JudgeRow] = []
    for it in sorted(by_iter):
        pairs = by_iter[it]
        v0 = [r[1] for r in pairs]
        v1 = [r[2] for r in pairs]
        exp = [r[3] for r in pairs]
        both = any(r[4] for r in pairs)
        # unparseable among the verdicts that exist (a missing order-1 row is not a verdict)
        stored = v0 + [r[2] for r in pairs if r[4]]
        n_bad = sum(v is None for v in stored)
        consistent = sum((a, b) in (("A", "B"), ("B", "A")) for a, b in zip(v0, v1, strict=True))
        table.append(
            JudgeRow(
                iteration=it,
                n_pairs=len(pairs),
                accuracy=judge_accuracy(v0, v1, exp) if both else None,
                accuracy_order0=sum(a == e for a, e in zip(v0, exp, strict=True)) / len(pairs),
                consistency=consistent / len(pairs) if both else None,
                unparseable=n_bad / len(stored),
            )
        )
    return table
