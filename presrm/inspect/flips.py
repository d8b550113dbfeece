"""What changed between two models on the same problems: the problems one got right and the other
wrong ("flipped"), with counts and the paired difference of their accuracies.

The two sides are two iterations of one run, or iterations of two run files over the same
held-out problems; each side is a tree summary table (presrm.inspect.problems) and one phase
(``greedy`` by default: the eval problems, the same in every iteration). A problem is paired when
both sides have a tree for it; a tree without a final answer counts as wrong, as in the evals.
Everything here is computed in memory from those tables, so it follows a live run as the tables
are refreshed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from presrm.errors import StoreError
from presrm.inspect.problems import TreeQuery, select_trees
from presrm.intervals import paired_difference

KINDS: dict[str, str] = {
    "flipped": "flipped either way",
    "fixed": "wrong → right",
    "broken": "right → wrong",
    "all": "every paired problem",
}
"""Which pairs the compare table shows: key -> description."""

FLIP_COLUMNS: tuple[str, ...] = (
    "problem_id",
    "question",
    "answer",
    "kind",
    "tree_a",
    "correct_a",
    "final_a",
    "min_a",
    "tree_b",
    "correct_b",
    "final_b",
    "min_b",
)
_SIDE = ("tree_id", "problem_id", "question", "answer", "correct", "final_answer", "min_score")


@dataclass(frozen=True)
class FlipQuery:
    """The two sides (iteration of the A and B tables), the phase, which pairs, and the problems
    table's own filters (preset and search: a pair is kept when either of its trees matches)."""

    a: int | None = None
    b: int | None = None
    phase: str = "greedy"
    kind: str = "flipped"
    preset: str = "all"
    search: str = ""
    offset: int = 0
    limit: int = 200  # rows of one page: a table of thousands of rows takes seconds to fill

    def with_(self, **changes: Any) -> FlipQuery:
        return replace(self, **changes)


@dataclass(frozen=True)
class FlipSummary:
    """All pairs of the two sides (before the kind and filters): counts and B − A with its interval."""

    n: int
    fixed: int
    broken: int
    both_right: int
    both_wrong: int
    difference: float | None  # accuracy of B minus A, paired
    low: float | None
    high: float | None


@dataclass(frozen=True)
class FlipPage:
    """The compare table: the pairs shown (columns :data:`FLIP_COLUMNS`) and the summary."""

    rows: pa.Table
    summary: FlipSummary
    query: FlipQuery
    total: int = 0  # pairs kept by the kind and filters, over all pages


def flip_kind(a: bool, b: bool) -> str:
    """fixed (wrong → right), broken (right → wrong), right (both) or wrong (both)."""
    if a == b:
        return "right" if a else "wrong"
    return "fixed" if b else "broken"


def summarize(a: list[bool], b: list[bool]) -> FlipSummary:
    """Counts and the paired difference of two sides' outcomes on the same problems."""
    kinds = [flip_kind(x, y) for x, y in zip(a, b, strict=True)]
    diff = paired_difference(b, a)
    return FlipSummary(
        len(kinds),
        kinds.count("fixed"),
        kinds.count("broken"),
        kinds.count("right"),
        kinds.count("wrong"),
        None if diff is None else diff.estimate,
        None if diff is None else diff.low,
        None if diff is None else diff.high,
    )


def _side(table: pa.Table, iteration: int, phase: str, suffix: str) -> pa.Table:
    """One tree per problem of that iteration and phase (the first), columns renamed ``*_suffix``."""
    col = table.column
    mask = pc.and_(pc.equal(col("iteration"), iteration), pc.equal(col("phase"), phase))
    side = table.filter(mask).select(list(_SIDE))
    if side.num_rows:
        side = side.take(pc.sort_indices(side, sort_keys=[("tree_id", "ascending")]))
        first: dict[Any, int] = {}
        for i, problem in enumerate(side.column("problem_id").to_pylist()):
            first.setdefault(problem, i)
        side = side.take(pa.array(list(first.values()), pa.int64()))
    names = {"tree_id": "tree", "correct": "correct", "final_answer": "final", "min_score": "min"}
    return side.rename_columns([f"{names[n]}_{suffix}" if n in names else n for n in side.column_names])


def _matching(table: pa.Table, query: FlipQuery, hits: Iterable[int]) -> set[int] | None:
    """Tree ids the problems table's filters keep (None: no filter set)."""
    if query.preset == "all" and not query.search:
        return None
    page = select_trees(
        table, TreeQuery(preset=query.preset, search=query.search, limit=table.num_rows), hits
    )
    return set(page.rows.column("tree_id").to_pylist())


def compare_trees(
    table_a: pa.Table,
    table_b: pa.Table,
    query: FlipQuery,
    hits_a: Iterable[int] = (),
    hits_b: Iterable[int] = (),
) -> FlipPage:
    """Pair the two sides' trees by problem and keep the pairs the query asks for (no file access).

    ``hits_a`` / ``hits_b``: trees whose step text matches the search (presrm.inspect.search_tree_ids).
    """
    if query.kind not in KINDS:
        raise StoreError(f"unknown comparison {query.kind!r}; choose from {', '.join(KINDS)}")
    empty = pa.table({name: pa.array([], pa.null()) for name in FLIP_COLUMNS})
    if query.a is None or query.b is None:
        return FlipPage(empty, summarize([], []), query)
    a = _side(table_a, query.a, query.phase, "a")
    b = _side(table_b, query.b, query.phase, "b").drop_columns(["answer"])
    # Two run files may number different problems alike: a pair is the same id and question.
    pairs = a.join(b, ["problem_id", "question"], join_type="inner")
    right_a = [bool(x) for x in pc.fill_null(pairs.column("correct_a"), False).to_pylist()]
    right_b = [bool(x) for x in pc.fill_null(pairs.column("correct_b"), False).to_pylist()]
    summary = summarize(right_a, right_b)
    kinds = [flip_kind(x, y) for x, y in zip(right_a, right_b, strict=True)]
    pairs = pairs.append_column("kind", pa.array(kinds, pa.string()))
    keep = [
        query.kind == "all" or k == query.kind or (query.kind == "flipped" and k in ("fixed", "broken"))
        for k in kinds
    ]
    matched_a, matched_b = _matching(table_a, query, hits_a), _matching(table_b, query, hits_b)
    if matched_a is not None and matched_b is not None:
        trees = zip(pairs.column("tree_a").to_pylist(), pairs.column("tree_b").to_pylist(), strict=True)
        keep = [k and (ta in matched_a or tb in matched_b) for k, (ta, tb) in zip(keep, trees, strict=True)]
    rows = pairs.filter(pa.array(keep, pa.bool_())).select(list(FLIP_COLUMNS))
    if rows.num_rows:
        order = [("kind", "ascending"), ("problem_id", "ascending")]
        rows = rows.take(pc.sort_indices(rows, sort_keys=order))
    page = rows.slice(max(0, query.offset), max(0, query.limit))
    return FlipPage(page, summary, query, rows.num_rows)
