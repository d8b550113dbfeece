"""The problems table: one row per tree, with filters, presets, sorting, paging and text search.

Every read opens the run file read-only, runs parameterised SQL and closes it (presrm.store.db:
nobody keeps a run file open, so a live run keeps writing). DuckDB aggregates the per-tree
summary table (small: one row per search tree); filters, sorting and pages are then computed
in memory from that Arrow table without going back to the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from presrm.errors import StoreError
from presrm.inspect.changes import DataVersion, read_version
from presrm.store.db import first_row, open_run

TREE_COLUMNS: tuple[str, ...] = (
    "tree_id",
    "iteration",
    "phase",
    "problem_id",
    "question",
    "answer",
    "final_answer",
    "correct",
    "finished",
    "min_score",
    "mean_score",
    "last_score",
    "n_steps",
    "n_nodes",
    "n_rollbacks",
    "n_judgments",
    "n_pairs",
    "consistent",
    "inconsistent",
    "unparseable",
    "checker_disagree",
    "n_flags",
)
"""Columns of the tree summary table, in order."""


# One row per search tree. The accepted solution is the chosen, not rolled back steps.
# Judge pairs: the two presentations of one unordered pair of nodes; a pair is
# inconsistent when both verdicts parsed and name different winners. checker_disagree
# counts judgments whose parsed verdict differs from the known correct one (`expected`,
# filled from the step checker or an EFT label).
_TREES_SQL = """
WITH n AS (
    SELECT tree_id,
           any_value(iteration) AS iteration, any_value(phase) AS phase, any_value(problem_id) AS problem_id,
           count(*) AS n_nodes,
           count(*) FILTER (WHERE acc) AS n_steps,
           min(soft_score) FILTER (WHERE acc) AS min_score,
           avg(soft_score) FILTER (WHERE acc) AS mean_score,
           arg_max(soft_score, depth) FILTER (WHERE acc AND soft_score IS NOT NULL) AS last_score,
           count(*) FILTER (WHERE rolled_back) AS n_rollbacks,
           coalesce(bool_or(is_final) FILTER (WHERE acc), false) AS finished,
           arg_max(final_answer, depth) FILTER (WHERE acc AND is_final) AS final_answer,
           bool_or(correct) FILTER (WHERE acc AND is_final) AS correct
    FROM (SELECT *, coalesce(chosen, false) AND NOT coalesce(rolled_back, false) AS acc FROM nodes
          WHERE tree_id >= ?)
    GROUP BY tree_id
), j AS (
    SELECT tree_id, count(*) AS n_judgments,
           count(*) FILTER (WHERE verdict IS NULL) AS unparseable,
           count(*) FILTER (WHERE expected IS NOT NULL AND verdict IS NOT NULL AND verdict <> expected)
               AS checker_disagree
    FROM judgments WHERE tree_id >= ? GROUP BY tree_id
), p AS (
    SELECT tree_id, count(*) AS n_pairs,
           count(*) FILTER (WHERE w0 IS NOT NULL AND w0 = w1) AS consistent,
           count(*) FILTER (WHERE w0 IS NOT NULL AND w1 IS NOT NULL AND w0 <> w1) AS inconsistent
    FROM (
        SELECT tree_id, least(node_a, node_b) AS x, greatest(node_a, node_b) AS y,
               any_value(winner) FILTER (WHERE "order" = 0) AS w0,
               any_value(winner) FILTER (WHERE "order" = 1) AS w1
        FROM judgments
        WHERE tree_id >= ? AND node_b IS NOT NULL
        GROUP BY ALL HAVING count(*) >= 2
    ) GROUP BY tree_id
), q AS (
    SELECT problem_id, any_value(question) AS question, any_value(answer) AS answer
    FROM problems GROUP BY problem_id
)
SELECT n.tree_id, n.iteration, n.phase, n.problem_id, q.question, q.answer, n.final_answer, n.correct,
       n.finished, n.min_score, n.mean_score, n.last_score, n.n_steps, n.n_nodes, n.n_rollbacks,
       coalesce(j.n_judgments, 0) AS n_judgments, coalesce(p.n_pairs, 0) AS n_pairs,
       coalesce(p.consistent, 0) AS consistent, coalesce(p.inconsistent, 0) AS inconsistent,
       coalesce(j.unparseable, 0) AS unparseable, coalesce(j.checker_disagree, 0) AS checker_disagree,
       0 AS n_flags
FROM n LEFT JOIN j USING (tree_id) LEFT JOIN p USING (tree_id) LEFT JOIN q USING (problem_id)
ORDER BY n.tree_id
"""


_FLAG_COUNTS_SQL = """
SELECT tree_id, count(*) AS n_flags FROM (
    SELECT n.tree_id FROM flags f JOIN nodes n ON n.node_id = f.target_id WHERE f.target = 'node'
    UNION ALL
    SELECT j.tree_id FROM flags f JOIN judgments j ON j.judgment_id = f.target_id WHERE f.target = 'judgment'
) WHERE tree_id IS NOT NULL GROUP BY tree_id
"""


_TREE_SCHEMA = pa.schema(
    [
        ("tree_id", pa.int64()),
        ("iteration", pa.int32()),
        ("phase", pa.string()),
        ("problem_id", pa.string()),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("final_answer", pa.string()),
        ("correct", pa.bool_()),
        ("finished", pa.bool_()),
        ("min_score", pa.float64()),
        ("mean_score", pa.float64()),
        ("last_score", pa.float64()),
        ("n_steps", pa.int64()),
        ("n_nodes", pa.int64()),
        ("n_rollbacks", pa.int64()),
        ("n_judgments", pa.int64()),
        ("n_pairs", pa.int64()),
        ("consistent", pa.int64()),
        ("inconsistent", pa.int64()),
        ("unparseable", pa.int64()),
        ("checker_disagree", pa.int64()),
        ("n_flags", pa.int64()),
    ]
)


def _arrow(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any]) -> pa.Table:
    rel = con.sql(sql, params=list(params))
    fetch = getattr(rel, "to_arrow_table", None) or rel.arrow  # duckdb 2.x renamed arrow()
    result = fetch()
    return result if isinstance(result, pa.Table) else result.read_all()


def _flag_counts(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    return {int(t): int(c) for t, c in con.execute(_FLAG_COUNTS_SQL).fetchall()}


def _with_flags(table: pa.Table, counts: dict[int, int]) -> pa.Table:
    ids = table.column("tree_id").to_pylist()
    col = pa.array([counts.get(t, 0) for t in ids], pa.int64())
    return table.set_column(table.schema.get_field_index("n_flags"), "n_flags", col)


def _query_trees(con: duckdb.DuckDBPyConnection, min_tree_id: int) -> pa.Table:
    table = _arrow(con, _TREES_SQL, [min_tree_id] * 3)
    return table.cast(_TREE_SCHEMA)


def tree_summaries(path: str | Path) -> pa.Table:
    """One row per search tree (columns :data:`TREE_COLUMNS`), ordered by tree_id."""
    with open_run(path) as con:
        return _with_flags(_query_trees(con, -1), _flag_counts(con))


class TreeIndex:
    """The tree summary table of one run, kept up to date cheaply while the run writes.

    :meth:`refresh` reads the :class:`DataVersion`; when rows were added it re-aggregates
    only the trees at or after the smallest tree id touched by the new nodes and
    judgments (ids grow during a run), and when flags changed it recounts flags. Any
    shrinking count (a resumed run discarded rows) triggers a full reload. Rows that a
    run updates in place without adding rows to their tree are picked up by ``full=True``.

    ``table`` is replaced, never mutated, so readers in other threads see a consistent
    table; call :meth:`refresh` from one thread at a time.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.version: DataVersion | None = None
        # from_batches, not empty_table(): that imports pandas (~0.4 s) before the first screen.
        self.table: pa.Table = pa.Table.from_batches([], schema=_TREE_SCHEMA)
        self._flags: dict[int, int] = {}

    def refresh(self, *, full: bool = False) -> bool:
        """Bring the table up to date; True when anything changed."""
        with open_run(self.path) as con:
            new = read_version(con)
            old = self.version
            if not full and old == new:
                return False
            shrunk = old is not None and any(
                getattr(new, f) < getattr(old, f) for f in ("nodes", "judgments", "max_node", "max_judgment")
            )
            if full or old is None or shrunk:
                table = _query_trees(con, -1)
            elif (new.nodes, new.judgments, new.max_node, new.max_judgment) != (
                old.nodes,
                old.judgments,
                old.max_node,
                old.max_judgment,
            ):
                row = first_row(
                    con.execute(
                        "SELECT least((SELECT min(tree_id) FROM nodes WHERE node_id > ?),"
                        " (SELECT min(tree_id) FROM judgments WHERE judgment_id > ?))",
                        [old.max_node, old.max_judgment],
                    ).fetchall()
                )
                start = row[0] if row and row[0] is not None else None
                if start is None:
                    table = self.table
                else:
                    kept = self.table.filter(pc.less(self.table.column("tree_id"), start))
                    table = pa.concat_tables([kept, _query_trees(con, int(start))])
            else:
                table = self.table
            # Node and judgment ids never move between trees: flag counts change only with flags.
            if full or old is None or shrunk or (new.flags, new.max_flag) != (old.flags, old.max_flag):
                self._flags = _flag_counts(con) if new.flags else {}
        self.table = _with_flags(table, self._flags)
        self.version = new
        return True


PRESETS: dict[str, str] = {
    "all": "all trees",
    "confident_wrong": "wrong answer but high self-score",
    "checker": "judge disagreed with the step checker",
    "inconsistent": "judge inconsistent across the two orders",
    "flagged": "flagged by a person",
    "unfinished": "no final answer",
}
"""Filter presets of the problems table: key -> description."""


SORTABLE: tuple[str, ...] = (
    "tree_id",
    "problem_id",
    "iteration",
    "phase",
    "correct",
    "min_score",
    "mean_score",
    "n_steps",
    "n_nodes",
    "n_rollbacks",
    "inconsistent",
    "unparseable",
    "checker_disagree",
    "n_flags",
)


@dataclass(frozen=True)
class TreeQuery:
    """What the problems table shows: a preset, a search, optional iteration/phase, sort, page."""

    preset: str = "all"
    search: str = ""
    iteration: int | None = None
    phase: str | None = None
    sort: str = "tree_id"
    descending: bool = False
    offset: int = 0
    limit: int = 200
    high_score: float = 0.5
    """"High self-score" threshold of the confident_wrong preset (min self-score >=)."""

    def with_(self, **changes: Any) -> TreeQuery:
        return replace(self, **changes)


@dataclass(frozen=True)
class TreePage:
    """One page of the filtered, sorted tree summaries."""

    rows: pa.Table
    total: int
    query: TreeQuery


def search_tree_ids(path: str | Path, text: str, *, limit: int = 100_000) -> set[int]:
    """Trees with a step whose text contains ``text`` (case-insensitive, literal: no wildcards)."""
    if not text:
        return set()
    with open_run(path) as con:
        rows = con.execute(
            "SELECT DISTINCT tree_id FROM nodes WHERE contains(lower(text), lower(?)) LIMIT ?", [text, limit]
        ).fetchall()
    return {int(r[0]) for r in rows}


def select_trees(table: pa.Table, query: TreeQuery, text_hits: Iterable[int] = ()) -> TreePage:
    """Filter, sort and page the tree summary ``table`` (no file access).

    The search matches the problem id, question or final answer, or any tree in
    ``text_hits`` (from :func:`search_tree_ids`, which looks inside the step texts).
    """
    if query.preset not in PRESETS:
        raise StoreError(f"unknown filter preset {query.preset!r}; choose from {', '.join(PRESETS)}")
    if query.sort not in SORTABLE:
        raise StoreError(f"cannot sort by {query.sort!r}; choose from {', '.join(SORTABLE)}")
    mask = pa.array([True] * table.num_rows, pa.bool_())

    def both(m: Any) -> None:
        nonlocal mask
        mask = pc.and_kleene(mask, pc.fill_null(m, False))

    col = table.column
    if query.preset == "confident_wrong":
        both(pc.and_(pc.equal(col("correct"), False), pc.greater_equal(col("min_score"), query.high_score)))
    elif query.preset == "checker":
        both(pc.greater(col("checker_disagree"), 0))
    elif query.preset == "inconsistent":
        both(pc.greater(col("inconsistent"), 0))
    elif query.preset == "flagged":
        both(pc.greater(col("n_flags"), 0))
    elif query.preset == "unfinished":
        both(pc.invert(col("finished")))
    if query.iteration is not None:
        both(pc.equal(col("iteration"), query.iteration))
    if query.phase is not None:
        both(pc.equal(col("phase"), query.phase))
    if query.search:
        needle = query.search
        hit = pc.is_in(col("tree_id"), value_set=pa.array(sorted(set(text_hits)), pa.int64()))
        for name in ("problem_id", "question", "final_answer"):
            found = pc.fill_null(pc.match_substring(col(name), needle, ignore_case=True), False)
            hit = pc.or_(hit, found)
        both(hit)
    filtered = table.filter(mask)
    order = "descending" if query.descending else "ascending"
    keys = [(query.sort, order, "at_end")] + (
        [("tree_id", "ascending", "at_end")] if query.sort != "tree_id" else []
    )
    if filtered.num_rows:
        filtered = filtered.take(pc.sort_indices(filtered, sort_keys=keys))
    page = filtered.slice(max(0, query.offset), max(0, query.limit))
    return TreePage(page, filtered.num_rows, query)
