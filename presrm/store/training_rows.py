"""The rows training data is built from: each tree's accepted path and its rejected siblings."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from presrm.store.reader import query_rows

# One question per problem: a problem sampled again in another iteration (or another split)
# has one ``problems`` row each time, and joining them all repeated every step of its path.
_ACCEPTED_SQL = """
WITH q AS (SELECT run_id, problem_id, any_value(question) AS question FROM problems GROUP BY ALL)
SELECT n.tree_id, n.node_id, n.parent_id, n.depth, n.expansion, n.text, n.is_final, n.self_score, n.correct,
       q.question
FROM nodes n JOIN q ON q.problem_id = n.problem_id AND q.run_id = n.run_id
WHERE n.iteration = ? AND n.phase = 'train' AND n.chosen AND NOT n.rolled_back
ORDER BY n.tree_id, n.depth
"""

_PAIRS_SQL = """
SELECT c.node_id, r.text, r.is_final
FROM nodes c JOIN nodes r
  ON r.tree_id = c.tree_id AND r.parent_id IS NOT DISTINCT FROM c.parent_id AND r.expansion = c.expansion
 AND r.rejected
WHERE c.iteration = ? AND c.phase = 'train' AND c.chosen AND NOT c.rolled_back
"""
# The oracle ablation: only the pairs the task's step checker agrees with (not self-rewarding).
_CHECKER_AGREED_PAIRS_SQL = _PAIRS_SQL + " AND c.step_check AND NOT r.step_check\n"


def accepted_paths(run_file: str | Path, iteration: int) -> dict[int, list[tuple[Any, ...]]]:
    """tree_id -> its accepted steps in order: (tree_id, node_id, parent_id, depth, expansion, text,
    is_final, self_score, correct, question)."""
    paths: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
    for row in query_rows(run_file, _ACCEPTED_SQL, [iteration]):
        paths[row[0]].append(row)
    return paths


def rejected_steps(
    run_file: str | Path, iteration: int, *, checker_agreed_only: bool = False
) -> dict[int, tuple[str, bool]]:
    """chosen node_id -> (text, is_final) of the sibling the search rejected in its favour."""
    sql = _CHECKER_AGREED_PAIRS_SQL if checker_agreed_only else _PAIRS_SQL
    return {row[0]: (row[1], row[2]) for row in query_rows(run_file, sql, [iteration])}


# What an iteration's training search did: the counts that explain an empty training stage.
_SEARCH_COUNTS_SQL = """
SELECT
  (SELECT count(DISTINCT tree_id) FROM nodes WHERE iteration = ? AND phase = 'train'),
  (SELECT count(*) FROM judgments WHERE iteration = ? AND phase = 'train'),
  (SELECT count(*) FROM judgments WHERE iteration = ? AND phase = 'train' AND verdict IS NULL),
  (SELECT count(*) FROM (SELECT 1 FROM nodes WHERE iteration = ? AND phase = 'train'
                         GROUP BY tree_id, expansion)),
  (SELECT count(*) FROM (SELECT 1 FROM nodes WHERE iteration = ? AND phase = 'train'
                         GROUP BY tree_id, expansion HAVING count(DISTINCT text) = 1)),
  (SELECT count(*) FROM nodes WHERE iteration = ? AND phase = 'train' AND rolled_back),
  (SELECT count(*) FROM nodes WHERE iteration = ? AND phase = 'train' AND chosen AND NOT rolled_back),
  (SELECT count(*) FROM nodes WHERE iteration = ? AND phase = 'train' AND rejected),
  (SELECT count(*) FROM judge_pairs WHERE iteration = ? AND phase = 'train'),
  (SELECT count(*) FROM judge_pairs WHERE iteration = ? AND phase = 'train'
     AND first_winner IS NOT NULL AND swapped_winner IS NOT NULL AND first_winner <> swapped_winner)
"""

SEARCH_COUNT_NAMES = (
    "trees",
    "judgments",
    "unparseable",
    "expansions",
    "single_candidate_expansions",
    "rolled_back",
    "accepted_steps",
    "rejected_steps",
    "pairs",  # pairs judged in both orders
    "order_disagreements",  # of those: both orders have a verdict, naming different steps
)


def search_counts(run_file: str | Path, iteration: int) -> dict[str, int]:
    """The training search's counts of ``iteration`` (:data:`SEARCH_COUNT_NAMES`)."""
    (row,) = query_rows(run_file, _SEARCH_COUNTS_SQL, [iteration] * len(SEARCH_COUNT_NAMES))
    return {name: int(value or 0) for name, value in zip(SEARCH_COUNT_NAMES, row, strict=True)}


_STAGE_DETAILS_SQL = """
SELECT iteration, stage, detail FROM stages WHERE list_contains(?, stage) AND iteration < ? ORDER BY iteration
"""


def stage_details(
    run_file: str | Path, stages: tuple[str, ...], *, before: int
) -> dict[int, dict[str, dict[str, Any]]]:
    """iteration -> stage -> its stored detail, for the finished ``stages`` of iterations < ``before``."""
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for iteration, stage, detail in query_rows(run_file, _STAGE_DETAILS_SQL, [list(stages), before]):
        out.setdefault(int(iteration), {})[stage] = json.loads(detail) if detail else {}
    return out
