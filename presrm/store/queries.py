"""The inspector's query layer: typed, UI-free reads of a run file.

Every function that touches the file opens it read-only, runs parameterised SQL and
closes it (see db.py: nobody keeps a run file open, so a live run keeps writing).
Aggregation is left to DuckDB; the per-tree summary table it returns is small (one
row per search tree) and the problems table, its filters, sorting and pages, and the
calibration view are then computed in memory from that Arrow table, without going
back to the file.

Used by the TUI (presrm.tui) and reusable by the CLI.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from presrm.errors import PresrmError, StoreError
from presrm.store.db import open_run

# ---- change detection -------------------------------------------------------------------------


@dataclass(frozen=True)
class DataVersion:
    """Row counts and largest ids of the tables that grow during a run: cheap to read, and
    any write changes at least one of them."""

    nodes: int = 0
    max_node: int = -1
    judgments: int = 0
    max_judgment: int = -1
    flags: int = 0
    max_flag: int = -1
    evals: int = 0
    eval_metrics: int = 0
    iterations: int = 0
    stages: int = 0


_VERSION_SQL = """
SELECT (SELECT count(*) FROM nodes), (SELECT coalesce(max(node_id), -1) FROM nodes),
       (SELECT count(*) FROM judgments), (SELECT coalesce(max(judgment_id), -1) FROM judgments),
       (SELECT count(*) FROM flags), (SELECT coalesce(max(flag_id), -1) FROM flags),
       (SELECT count(*) FROM evals), (SELECT count(*) FROM eval_metrics),
       (SELECT count(*) FROM iterations), (SELECT count(*) FROM stages)
"""


def first_row(rows: list[Any]) -> Any:
    """The first row of a fetched result, or None.

    (Results are always fetched whole: duckdb 2 refuses new work on a connection
    whose previous result was only partly fetched, as ``fetchone()`` leaves it.)
    """
    return rows[0] if rows else None


def _version(con: duckdb.DuckDBPyConnection) -> DataVersion:
    row = first_row(con.execute(_VERSION_SQL).fetchall())
    assert row is not None
    return DataVersion(*(int(v) for v in row))


def data_version(path: str | Path, *, timeout: float = 30.0) -> DataVersion:
    """The run's current :class:`DataVersion` (one short read-only open)."""
    with open_run(path, timeout=timeout) as con:
        return _version(con)


# ---- the run --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunInfo:
    """The run row and overall counts."""

    run_id: str
    created_at: dt.datetime | None
    presrm_version: str
    model: str
    task: str
    algo: str
    seed: int
    n_problems: int
    n_trees: int
    n_nodes: int
    n_judgments: int
    n_flags: int
    stages: tuple[tuple[int, str], ...]


def run_info(path: str | Path, trees: pa.Table | None = None) -> RunInfo:
    """The run row, counts and finished stages. StoreError if the file has no run row.

    With ``trees`` (a tree summary table of the same run) the tree count comes from it
    instead of a distinct count over every node (cheaper while a large run writes).
    """
    with open_run(path) as con:
        row = first_row(con.execute(
            "SELECT run_id, created_at, presrm_version, model, task, algo, seed FROM runs LIMIT 1"
        ).fetchall())
        if row is None:
            raise StoreError(f"{path}: has no run row (not written by `presrm run`?)")
        n_trees_sql = "(SELECT count(DISTINCT tree_id) FROM nodes)" if trees is None else "NULL"
        counts = first_row(con.execute(
            f"SELECT (SELECT count(*) FROM problems), {n_trees_sql},"
            " (SELECT count(*) FROM nodes), (SELECT count(*) FROM judgments), (SELECT count(*) FROM flags)"
        ).fetchall())
        assert counts is not None
        stages = con.execute("SELECT iteration, stage FROM stages ORDER BY finished_at, iteration").fetchall()
    return RunInfo(
        run_id=str(row[0]), created_at=row[1], presrm_version=str(row[2] or ""), model=str(row[3] or ""),
        task=str(row[4] or ""), algo=str(row[5] or ""), seed=int(row[6] or 0),
        n_problems=int(counts[0]), n_trees=int(counts[1]) if trees is None else trees.num_rows,
        n_nodes=int(counts[2]),
        n_judgments=int(counts[3]), n_flags=int(counts[4]),
        stages=tuple((int(i), str(s)) for i, s in stages),
    )


# ---- per-tree summaries (the problems table) -------------------------------------------------

TREE_COLUMNS: tuple[str, ...] = (
    "tree_id", "iteration", "phase", "problem_id", "question", "answer", "final_answer", "correct",
    "finished", "min_score", "mean_score", "last_score", "n_steps", "n_nodes", "n_rollbacks",
    "n_judgments", "n_pairs", "consistent", "inconsistent", "unparseable", "checker_disagree", "n_flags",
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
        WHERE mode = 'pairwise' AND tree_id >= ? AND node_b IS NOT NULL
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
        ("tree_id", pa.int64()), ("iteration", pa.int32()), ("phase", pa.string()), ("problem_id", pa.string()),
        ("question", pa.string()), ("answer", pa.string()), ("final_answer", pa.string()),
        ("correct", pa.bool_()), ("finished", pa.bool_()), ("min_score", pa.float64()),
        ("mean_score", pa.float64()), ("last_score", pa.float64()), ("n_steps", pa.int64()),
        ("n_nodes", pa.int64()), ("n_rollbacks", pa.int64()), ("n_judgments", pa.int64()),
        ("n_pairs", pa.int64()), ("consistent", pa.int64()), ("inconsistent", pa.int64()),
        ("unparseable", pa.int64()), ("checker_disagree", pa.int64()), ("n_flags", pa.int64()),
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
        self.table: pa.Table = _TREE_SCHEMA.empty_table()
        self._flags: dict[int, int] = {}

    def refresh(self, *, full: bool = False) -> bool:
        """Bring the table up to date; True when anything changed."""
        with open_run(self.path) as con:
            new = _version(con)
            old = self.version
            if not full and old == new:
                return False
            shrunk = old is not None and any(
                getattr(new, f) < getattr(old, f) for f in ("nodes", "judgments", "max_node", "max_judgment")
            )
            if full or old is None or shrunk:
                table = _query_trees(con, -1)
            elif (new.nodes, new.judgments, new.max_node, new.max_judgment) != (
                old.nodes, old.judgments, old.max_node, old.max_judgment
            ):
                row = first_row(con.execute(
                    "SELECT least((SELECT min(tree_id) FROM nodes WHERE node_id > ?),"
                    " (SELECT min(tree_id) FROM judgments WHERE judgment_id > ?))",
                    [old.max_node, old.max_judgment],
                ).fetchall())
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


# ---- filtering, sorting and paging the problems table (in memory) ----------------------------

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
    "tree_id", "problem_id", "iteration", "phase", "correct", "min_score", "mean_score", "n_steps",
    "n_nodes", "n_rollbacks", "inconsistent", "unparseable", "checker_disagree", "n_flags",
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
    keys = [(query.sort, order, "at_end")] + ([("tree_id", "ascending", "at_end")] if query.sort != "tree_id" else [])
    if filtered.num_rows:
        filtered = filtered.take(pc.sort_indices(filtered, sort_keys=keys))
    page = filtered.slice(max(0, query.offset), max(0, query.limit))
    return TreePage(page, filtered.num_rows, query)


# ---- one tree --------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class NodeRow:
    """One candidate step."""

    node_id: int
    parent_id: int | None
    depth: int
    expansion: int | None
    text: str
    n_tokens: int | None
    logprob: float | None
    finish: str | None
    self_score: float | None
    score_kind: str | None
    soft_score: float | None
    chosen: bool
    rejected: bool
    rolled_back: bool
    is_final: bool
    final_answer: str | None
    parse_status: str | None
    correct: bool | None
    step_check: bool | None


@dataclass(frozen=True)
class JudgmentRow:
    """One judge call."""

    judgment_id: int
    mode: str
    node_a: int | None
    node_b: int | None
    order: int
    check_text: str | None
    raw_output: str | None
    verdict: str | None
    p_a: float | None
    p_b: float | None
    winner: int | None
    expected: str | None


@dataclass(frozen=True)
class TreeDetail:
    """A whole search tree: its problem, every candidate step and every judge call."""

    tree_id: int
    iteration: int
    phase: str
    problem_id: str
    question: str
    answer: str | None
    nodes: tuple[NodeRow, ...]
    judgments: tuple[JudgmentRow, ...]
    flags: tuple[FlagInfo, ...] = ()
    by_id: dict[int, NodeRow] = field(default_factory=dict, compare=False, repr=False)

    def children(self, parent_id: int | None) -> list[NodeRow]:
        """Candidates continuing ``parent_id`` (None: first steps), by expansion round then id."""
        return sorted((n for n in self.nodes if n.parent_id == parent_id), key=lambda n: (n.expansion or 0, n.node_id))

    def judgments_of(self, node_id: int) -> list[JudgmentRow]:
        """Every judge call that showed ``node_id`` (as A or B), pair by pair, order 0 before 1."""
        calls = [j for j in self.judgments if node_id in (j.node_a, j.node_b)]
        return sorted(calls, key=lambda j: (min(j.node_a or -1, j.node_b or -1), max(j.node_a or -1, j.node_b or -1), j.order))

    def flags_on(self, target: str, target_id: int) -> list[FlagInfo]:
        return [f for f in self.flags if f.target == target and f.target_id == target_id]

    def node_flag_count(self, node_id: int) -> int:
        """Flags on the node itself plus on judgments that showed it."""
        ids = {j.judgment_id for j in self.judgments if node_id in (j.node_a, j.node_b)}
        return sum(
            1 for f in self.flags
            if (f.target == "node" and f.target_id == node_id) or (f.target == "judgment" and f.target_id in ids)
        )

    def chosen_path(self) -> list[NodeRow]:
        """The accepted solution, in step order."""
        return sorted((n for n in self.nodes if n.chosen and not n.rolled_back), key=lambda n: n.depth)


_FLAG_COLS = "flag_id, target, target_id, who, created_at, note, original_verdict, corrected_verdict"


def _flag(row: Sequence[Any]) -> FlagInfo:
    return FlagInfo(
        flag_id=int(row[0]), target=str(row[1]), target_id=int(row[2]), who=str(row[3] or ""),
        created_at=row[4], note=str(row[5] or ""), original_verdict=row[6], corrected_verdict=row[7],
    )


def load_tree(path: str | Path, tree_id: int) -> TreeDetail:
    """Every node and judge call of one tree, with its problem and flags."""
    with open_run(path) as con:
        nodes = con.execute(
            "SELECT node_id, parent_id, depth, expansion, text, n_tokens, logprob, finish, self_score, score_kind,"
            " coalesce(chosen, false), coalesce(rejected, false), coalesce(rolled_back, false),"
            " coalesce(is_final, false), final_answer, parse_status, correct, step_check,"
            " iteration, phase, problem_id, soft_score"
            " FROM nodes WHERE tree_id = ? ORDER BY node_id",
            [tree_id],
        ).fetchall()
        if not nodes:
            raise StoreError(f"tree {tree_id} not found in {path}")
        iteration, phase, problem_id = nodes[0][18], nodes[0][19], nodes[0][20]
        problem = first_row(con.execute(
            "SELECT question, answer FROM problems WHERE problem_id = ? LIMIT 1", [problem_id]
        ).fetchall())
        judgments = con.execute(
            'SELECT judgment_id, mode, node_a, node_b, "order", check_text, raw_output, verdict, p_a, p_b,'
            " winner, expected FROM judgments WHERE tree_id = ? ORDER BY judgment_id",
            [tree_id],
        ).fetchall()
        flags = con.execute(
            f"SELECT {_FLAG_COLS} FROM flags WHERE (target = 'node' AND target_id IN"
            " (SELECT node_id FROM nodes WHERE tree_id = ?)) OR (target = 'judgment' AND target_id IN"
            " (SELECT judgment_id FROM judgments WHERE tree_id = ?)) ORDER BY flag_id",
            [tree_id, tree_id],
        ).fetchall()
    node_rows = tuple(
        NodeRow(
            node_id=int(r[0]), parent_id=None if r[1] is None else int(r[1]), depth=int(r[2] or 0),
            expansion=r[3], text=str(r[4] or ""), n_tokens=r[5], logprob=r[6], finish=r[7], self_score=r[8],
            score_kind=r[9], soft_score=r[21], chosen=bool(r[10]), rejected=bool(r[11]), rolled_back=bool(r[12]),
            is_final=bool(r[13]), final_answer=r[14], parse_status=r[15], correct=r[16], step_check=r[17],
        )
        for r in nodes
    )
    judgment_rows = tuple(
        JudgmentRow(
            judgment_id=int(r[0]), mode=str(r[1] or ""), node_a=r[2], node_b=r[3], order=int(r[4] or 0),
            check_text=r[5], raw_output=r[6], verdict=r[7], p_a=r[8], p_b=r[9], winner=r[10], expected=r[11],
        )
        for r in judgments
    )
    return TreeDetail(
        tree_id=int(tree_id), iteration=int(iteration), phase=str(phase), problem_id=str(problem_id),
        question=str(problem[0]) if problem else "", answer=None if problem is None else problem[1],
        nodes=node_rows, judgments=judgment_rows, flags=tuple(_flag(f) for f in flags),
        by_id={n.node_id: n for n in node_rows},
    )


# ---- iterations -------------------------------------------------------------------------------

HEADLINE_METRICS: tuple[str, ...] = (
    "accuracy_greedy", "accuracy_search", "judge_accuracy", "auroc_min", "judge_consistency",
)
"""Per-iteration metrics the overview shows (definitions: presrm.evaluate)."""


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
    is computed from the stored rows with :func:`presrm.evaluate.summarize_iteration`
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
            grouped = trees.group_by("iteration").aggregate(
                [("tree_id", "count"), ("n_nodes", "sum"), ("n_judgments", "sum")]
            ).to_pylist()
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
                iteration=it, model_name=model_name, finished=finished, metrics=metrics,
                computed=frozenset(computed),
                extra={k: v for k, v in have.items() if k not in HEADLINE_METRICS},
                n_trees=n_trees, n_nodes=n_nodes, n_judgments=judgments.get(it, 0), n_flags=flags.get(it, 0),
            )
        )
    return out


def _summarize(path: str | Path, iteration: int) -> dict[str, float | None]:
    # Imported here: the store layer does not depend on the evaluation code at import time.
    from presrm.evaluate import summarize_iteration

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
    return {int(r["iteration"]): float(r["right_mean"]) for r in grouped.aggregate([("right", "mean")]).to_pylist()}


# ---- calibration -----------------------------------------------------------------------------

SCORES: tuple[str, ...] = ("min_score", "mean_score", "last_score")


@dataclass(frozen=True)
class CalibrationBin:
    """Solutions whose score lies in [lo, hi) (the last bin includes 1.0)."""

    lo: float
    hi: float
    n: int
    mean_score: float | None
    accuracy: float | None


@dataclass(frozen=True)
class TreeRef:
    """A solution listed in the calibration view."""

    tree_id: int
    problem_id: str
    iteration: int
    phase: str
    score: float
    correct: bool
    final_answer: str | None


@dataclass(frozen=True)
class Calibration:
    """Self-score of finished solutions against their correctness."""

    score: str
    n: int
    bins: tuple[CalibrationBin, ...]
    ece: float | None
    """Expected calibration error: sum over bins of n_bin/n * |accuracy - mean score|."""
    auroc: float | None
    confident_wrong: tuple[TreeRef, ...]
    unconfident_right: tuple[TreeRef, ...]


def calibration(
    trees: pa.Table,
    *,
    score: str = "min_score",
    iteration: int | None = None,
    phase: str | None = None,
    n_bins: int = 10,
    top: int = 10,
) -> Calibration:
    """Reliability bins, ECE, AUROC and extremes over solutions with a score (no file access).

    A solution counts when its tree has the score and a final answer; unfinished
    trees are left out. Bins, ECE and AUROC use :mod:`presrm.metrics` (the loop's
    definitions).
    """
    from presrm.metrics import auroc, expected_calibration_error, reliability_table

    if score not in SCORES:
        raise StoreError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    if n_bins < 1:
        raise StoreError("calibration needs at least one bin")
    mask = pc.and_(pc.is_valid(trees.column(score)), pc.is_valid(trees.column("correct")))
    if iteration is not None:
        mask = pc.and_(mask, pc.equal(trees.column("iteration"), iteration))
    if phase is not None:
        mask = pc.and_(mask, pc.equal(trees.column("phase"), phase))
    rows = trees.filter(mask)
    scores = [min(1.0, max(0.0, float(v))) for v in rows.column(score).to_pylist()]
    labels = [bool(v) for v in rows.column("correct").to_pylist()]
    bins = tuple(
        CalibrationBin(b.lo, b.hi, b.count, b.mean_score, b.accuracy) for b in reliability_table(scores, labels, n_bins)
    )

    def refs(correct: bool, descending: bool) -> tuple[TreeRef, ...]:
        part = rows.filter(pc.equal(rows.column("correct"), correct))
        if part.num_rows == 0:
            return ()
        order = "descending" if descending else "ascending"
        part = part.take(pc.sort_indices(part, sort_keys=[(score, order), ("tree_id", "ascending")]))
        return tuple(
            TreeRef(r["tree_id"], r["problem_id"], r["iteration"], r["phase"], float(r[score]), bool(r["correct"]),
                    r["final_answer"])
            for r in part.slice(0, top).to_pylist()
        )

    return Calibration(
        score=score, n=len(scores), bins=bins, ece=expected_calibration_error(scores, labels, n_bins),
        auroc=auroc(scores, labels), confident_wrong=refs(False, True), unconfident_right=refs(True, False),
    )
