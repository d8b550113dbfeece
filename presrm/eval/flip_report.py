"""The problems two runs' final models disagree on, for ``comparison.md``.

Each run after the first is set against the first: the last greedily evaluated model of each, on
the held-out problems both evaluated (the same id and question). The counts and the paired
difference come from presrm.inspect.flips, as in the inspector's compare tab.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from presrm.display import visible
from presrm.inspect.flips import summarize
from presrm.store.reader import query_rows

MAX_LISTED = 50  # problems listed per direction; the counts cover all of them

_OUTCOMES_SQL = """
WITH q AS (SELECT problem_id, any_value(question) AS question FROM problems GROUP BY ALL)
SELECT e.problem_id, q.question, coalesce(e.correct, false), e.final_answer
FROM evals e LEFT JOIN q USING (problem_id)
WHERE e.mode = 'greedy' AND e.iteration = (SELECT max(iteration) FROM evals WHERE mode = 'greedy')
"""
_LAST_SQL = "SELECT max(iteration) FROM evals WHERE mode = 'greedy'"

Outcomes = dict[tuple[str, str], tuple[bool, str | None]]


def _outcomes(run_file: str | Path) -> tuple[int | None, Outcomes]:
    ((last,),) = query_rows(run_file, _LAST_SQL)
    rows = query_rows(run_file, _OUTCOMES_SQL)
    return last, {(str(p), str(q)): (bool(ok), a) for p, q, ok, a in rows}


def _md(text: str | None, width: int = 80) -> str:
    """Task or model text on one Markdown line, as literal as Markdown allows."""
    flat = " ".join(visible(text or "").split())
    flat = flat if len(flat) <= width else flat[: width - 1] + "…"
    return (
        flat.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("`", "'")
        .replace("*", "\\*")
        .replace("_", "\\_")
    )


def flip_lines(run_files: Sequence[str | Path], names: Sequence[str]) -> list[str]:
    """The "Flipped problems" section: each later run's last model against the first run's."""
    lines = ["", "## Flipped problems (last greedy eval of each run against the first run's)", ""]
    last_a, a = _outcomes(run_files[0])
    for run_file, name in zip(run_files[1:], names[1:], strict=True):
        last_b, b = _outcomes(run_file)
        common = sorted(set(a) & set(b))
        title = f"### {names[0]} M{last_a} → {name} M{last_b}"
        if not common:
            lines += [title, "", "No held-out problem evaluated by both.", ""]
            continue
        s = summarize([a[k][0] for k in common], [b[k][0] for k in common])
        diff = "" if s.difference is None else f"; accuracy B − A {100 * s.difference:+.1f} points"
        interval = ""
        if s.low is not None and s.high is not None:
            interval = f" [{100 * s.low:+.1f}, {100 * s.high:+.1f}] (paired, 95 %)"
        lines += [
            title,
            "",
            f"{s.n} problems: {s.fixed} wrong → right, {s.broken} right → wrong, {s.both_right} both right,"
            f" {s.both_wrong} both wrong{diff}{interval}.",
            "",
        ]
        for label, keys in (
            ("wrong → right", [k for k in common if not a[k][0] and b[k][0]]),
            ("right → wrong", [k for k in common if a[k][0] and not b[k][0]]),
        ):
            for problem, question in keys[:MAX_LISTED]:
                answers = f"{_md(a[(problem, question)][1], 20)} → {_md(b[(problem, question)][1], 20)}"
                lines.append(f"- {label}: {_md(problem, 40)}: {_md(question)} ({answers})")
            if len(keys) > MAX_LISTED:
                lines.append(f"- … and {len(keys) - MAX_LISTED} more {label}")
        lines.append("")
    return lines
