"""Human flags on judge errors, and their export as EFT training data.

A flag marks a judgment (one judge call) or a node (a candidate step) as a judge
error. Flags live in the run file's ``flags`` table. Writing one opens the file
read-write for one short transaction, retrying while the run's writer flushes (see
db.py), so flagging works while a run is being written.

EFT JSONL format (one JSON object per line, UTF-8), written by
:func:`export_flags_jsonl` and meant to be read as extra evaluation fine-tuning
(judge) examples::

    {"question": "Start with 5. Add 3. ...",      # the problem text
     "previous_steps": ["Step 1: 5 + 3 = 8"],        # accepted steps before the judged pair
     "step_a": "Step 2: 8 * 8 = 64",               # candidate shown as A
     "step_b": "Step 2: 8 * 8 = 66",               # candidate shown as B
     "verdict": "A",                               # the corrected verdict: "A" or "B"
     "reason": "B miscomputes 8 * 8",              # the flag's note ("" when none)
     "source": {"run_id": "...", "flag_id": 3, "judgment_id": 41, "node_id": null,
                "iteration": 1, "original_verdict": "B"}}

Which lines a flag produces:

* a flag on a pairwise judgment: one line, that judgment's pair in its presented
  order, with the flag's ``corrected_verdict`` (set by the person, by default the
  opposite of the judge's verdict). Flags without a corrected A/B verdict (e.g. on
  a pointwise judgment) are skipped.
* a flag on a node means "this step is wrong, the judge should not have preferred
  it": one line per pairwise judgment (both orders) in which the node *won*, with the
  verdict pointing to the other step.

All strings are model output or user text and are written as JSON data, verbatim.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import getpass
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from presrm.errors import StoreError
from presrm.steps import step_content
from presrm.store.db import check_identity, connect, first_row, open_run


@dataclass(frozen=True)
class FlagInfo:
    """A person's flag on a node or a judgment."""

    flag_id: int
    target: str
    target_id: int
    who: str
    created_at: dt.datetime | None
    note: str
    original_verdict: str | None
    corrected_verdict: str | None


TARGETS = ("judgment", "node")
VERDICTS = ("A", "B")
_COLS = "flag_id, target, target_id, who, created_at, note, original_verdict, corrected_verdict"


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): not worth failing a flag for
        return "unknown"


def _row_to_flag(row: Sequence[Any]) -> FlagInfo:
    return FlagInfo(
        flag_id=int(row[0]),
        target=str(row[1]),
        target_id=int(row[2]),
        who=str(row[3] or ""),
        created_at=row[4],
        note=str(row[5] or ""),
        original_verdict=row[6],
        corrected_verdict=row[7],
    )


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise StoreError(f"flag target must be one of {', '.join(TARGETS)}, got {target!r}")


def _write(path: str | Path, timeout: float) -> duckdb.DuckDBPyConnection:
    path = Path(path)
    if not path.exists():
        raise StoreError(f"run file not found: {path}")
    con = connect(path, read_only=False, timeout=timeout)
    try:
        check_identity(con, path)
    except BaseException:
        con.close()
        raise
    return con


def original_verdict(con: duckdb.DuckDBPyConnection, target: str, target_id: int) -> str | None:
    """What the judge said about the target: a judgment's verdict, or chosen/rejected/candidate.

    Raises StoreError when the target does not exist.
    """
    if target == "judgment":
        row = first_row(
            con.execute("SELECT verdict FROM judgments WHERE judgment_id = ?", [target_id]).fetchall()
        )
        if row is None:
            raise StoreError(f"no judgment {target_id} in this run")
        return row[0]
    row = first_row(
        con.execute(
            "SELECT coalesce(chosen, false), coalesce(rejected, false), coalesce(rolled_back, false)"
            " FROM nodes WHERE node_id = ?",
            [target_id],
        ).fetchall()
    )
    if row is None:
        raise StoreError(f"no node {target_id} in this run")
    chosen, rejected, rolled_back = row
    return "rolled_back" if rolled_back else "chosen" if chosen else "rejected" if rejected else "candidate"


def default_correction(target: str, original: str | None) -> str | None:
    """The verdict a flag corrects to by default: the other letter of a pairwise A/B verdict."""
    if target == "judgment" and original in VERDICTS:
        return "B" if original == "A" else "A"
    return None


def add_flag(
    path: str | Path,
    target: str,
    target_id: int,
    *,
    note: str = "",
    corrected_verdict: str | None = None,
    who: str | None = None,
    timeout: float = 30.0,
) -> FlagInfo:
    """Flag a judgment or node as a judge error; returns the stored flag.

    ``corrected_verdict`` defaults to :func:`default_correction`. Raises StoreError for
    an unknown target, a bad verdict, or a file that stays locked past ``timeout``.
    """
    _check_target(target)
    if corrected_verdict is not None and corrected_verdict not in VERDICTS + ("Yes", "No"):
        raise StoreError(f"corrected verdict must be A, B, Yes or No, got {corrected_verdict!r}")
    con = _write(path, timeout)
    try:
        con.execute("BEGIN")
        original = original_verdict(con, target, int(target_id))
        if corrected_verdict is None:
            corrected_verdict = default_correction(target, original)
        run = first_row(con.execute("SELECT run_id FROM runs LIMIT 1").fetchall())
        if run is None:
            raise StoreError(f"{path}: has no run row")
        flag_id_row = first_row(con.execute("SELECT coalesce(max(flag_id) + 1, 0) FROM flags").fetchall())
        assert flag_id_row is not None
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
        values = [
            int(flag_id_row[0]),
            target,
            int(target_id),
            who or _user(),
            now,
            note,
            original,
            corrected_verdict,
        ]
        con.execute(
            f"INSERT INTO flags (run_id, {_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [run[0], *values]
        )
        con.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")
        raise
    finally:
        con.close()
    return _row_to_flag(values)


def remove_flag(path: str | Path, flag_id: int, *, timeout: float = 30.0) -> bool:
    """Delete one flag; False when it did not exist."""
    con = _write(path, timeout)
    try:
        row = con.execute("DELETE FROM flags WHERE flag_id = ? RETURNING flag_id", [int(flag_id)]).fetchall()
    finally:
        con.close()
    return bool(row)


def remove_flags(path: str | Path, target: str, target_id: int, *, timeout: float = 30.0) -> int:
    """Delete every flag on one judgment or node; returns how many were removed."""
    _check_target(target)
    con = _write(path, timeout)
    try:
        rows = con.execute(
            "DELETE FROM flags WHERE target = ? AND target_id = ? RETURNING flag_id", [target, int(target_id)]
        ).fetchall()
    finally:
        con.close()
    return len(rows)


def list_flags(path: str | Path, target: str | None = None) -> list[FlagInfo]:
    """All flags (or those on one kind of target), oldest first."""
    if target is not None:
        _check_target(target)
    with open_run(path) as con:
        rows = con.execute(
            f"SELECT {_COLS} FROM flags WHERE ? IS NULL OR target = ? ORDER BY flag_id", [target, target]
        ).fetchall()
    return [_row_to_flag(r) for r in rows]


# ---- export ----------------------------------------------------------------------------------

_PREFIX_SQL = """
WITH RECURSIVE up(node_id, parent_id, depth, text) AS (
    SELECT node_id, parent_id, depth, text FROM nodes WHERE node_id = ?
    UNION ALL
    SELECT n.node_id, n.parent_id, n.depth, n.text FROM nodes n JOIN up ON n.node_id = up.parent_id
)
SELECT text FROM up ORDER BY depth
"""


def _prefix_steps(con: duckdb.DuckDBPyConnection, parent_id: int | None) -> list[str]:
    if parent_id is None:
        return []
    return [str(r[0]) for r in con.execute(_PREFIX_SQL, [parent_id]).fetchall()]


def _pair_example(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    judgment_id: int,
    verdict: str,
    flag: FlagInfo,
    node_id: int | None,
) -> dict[str, Any] | None:
    row = first_row(
        con.execute(
            "SELECT j.iteration, j.node_a, j.node_b, j.verdict, a.text, b.text, a.parent_id, p.question"
            " FROM judgments j JOIN nodes a ON a.node_id = j.node_a JOIN nodes b ON b.node_id = j.node_b"
            " LEFT JOIN (SELECT problem_id, any_value(question) AS question FROM problems GROUP BY problem_id) p"
            " ON p.problem_id = a.problem_id"
            " WHERE j.judgment_id = ? AND j.node_b IS NOT NULL",
            [judgment_id],
        ).fetchall()
    )
    if row is None:
        return None
    iteration, _, _, judged, text_a, text_b, parent_id, question = row
    if step_content(text_a) == step_content(text_b):
        return None  # two identical steps teach the judge nothing (and EFT loading rejects them)
    return {
        "question": question or "",
        "previous_steps": _prefix_steps(con, parent_id),
        "step_a": text_a,
        "step_b": text_b,
        "verdict": verdict,
        "reason": flag.note,
        "source": {
            "run_id": run_id,
            "flag_id": flag.flag_id,
            "judgment_id": judgment_id,
            "node_id": node_id,
            "iteration": iteration,
            "original_verdict": judged,
        },
    }


def flag_examples(path: str | Path) -> list[dict[str, Any]]:
    """The EFT examples the run's flags produce (see the module docstring), in flag order."""
    examples: list[dict[str, Any]] = []
    with open_run(path) as con:
        run = first_row(con.execute("SELECT run_id FROM runs LIMIT 1").fetchall())
        run_id = str(run[0]) if run else ""
        flags = [
            _row_to_flag(r) for r in con.execute(f"SELECT {_COLS} FROM flags ORDER BY flag_id").fetchall()
        ]
        for flag in flags:
            if flag.target == "judgment":
                if flag.corrected_verdict not in VERDICTS:
                    continue
                ex = _pair_example(con, run_id, flag.target_id, str(flag.corrected_verdict), flag, None)
                if ex is not None:
                    examples.append(ex)
                continue
            won = con.execute(
                "SELECT judgment_id, node_a FROM judgments WHERE node_b IS NOT NULL AND winner = ?"
                " AND ? IN (node_a, node_b) ORDER BY judgment_id",
                [flag.target_id, flag.target_id],
            ).fetchall()
            for judgment_id, node_a in won:
                verdict = "B" if node_a == flag.target_id else "A"
                ex = _pair_example(con, run_id, int(judgment_id), verdict, flag, flag.target_id)
                if ex is not None:
                    examples.append(ex)
    return examples


def export_flags_jsonl(path: str | Path, out: str | Path) -> int:
    """Write the flags of run ``path`` as EFT JSONL to ``out``; returns the number of lines."""
    examples = flag_examples(path)
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as fh:
            for ex in examples:
                fh.write(json.dumps(ex, ensure_ascii=False, default=str) + "\n")
    except OSError as err:
        raise StoreError(f"cannot write {out}: {err.strerror}") from None
    return len(examples)
