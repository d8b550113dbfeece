"""One reasoning tree with its nodes, judge calls and flags, as the inspector shows it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from presrm.errors import StoreError
from presrm.store.db import first_row, open_run
from presrm.store.flags import FlagInfo


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
    verdict_source: str | None = None  # text | probs | logprob (see the judgments table)
    probs_at: str | None = None  # verdict | appended (pairwise)


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
        return sorted(
            (n for n in self.nodes if n.parent_id == parent_id), key=lambda n: (n.expansion or 0, n.node_id)
        )

    def judgments_of(self, node_id: int) -> list[JudgmentRow]:
        """Every judge call that showed ``node_id`` (as A or B), pair by pair, order 0 before 1."""
        calls = [j for j in self.judgments if node_id in (j.node_a, j.node_b)]
        return sorted(
            calls,
            key=lambda j: (min(j.node_a or -1, j.node_b or -1), max(j.node_a or -1, j.node_b or -1), j.order),
        )

    def flags_on(self, target: str, target_id: int) -> list[FlagInfo]:
        return [f for f in self.flags if f.target == target and f.target_id == target_id]

    def node_flag_count(self, node_id: int) -> int:
        """Flags on the node itself plus on judgments that showed it."""
        ids = {j.judgment_id for j in self.judgments if node_id in (j.node_a, j.node_b)}
        return sum(
            1
            for f in self.flags
            if (f.target == "node" and f.target_id == node_id)
            or (f.target == "judgment" and f.target_id in ids)
        )

    def chosen_path(self) -> list[NodeRow]:
        """The accepted solution, in step order."""
        return sorted((n for n in self.nodes if n.chosen and not n.rolled_back), key=lambda n: n.depth)


_FLAG_COLS = "flag_id, target, target_id, who, created_at, note, original_verdict, corrected_verdict"


def _flag(row: Sequence[Any]) -> FlagInfo:
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
        problem = first_row(
            con.execute(
                "SELECT question, answer FROM problems WHERE problem_id = ? LIMIT 1", [problem_id]
            ).fetchall()
        )
        judgments = con.execute(
            'SELECT judgment_id, mode, node_a, node_b, "order", check_text, raw_output, verdict, p_a, p_b,'
            " winner, expected, verdict_source, probs_at FROM judgments WHERE tree_id = ? ORDER BY judgment_id",
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
            node_id=int(r[0]),
            parent_id=None if r[1] is None else int(r[1]),
            depth=int(r[2] or 0),
            expansion=r[3],
            text=str(r[4] or ""),
            n_tokens=r[5],
            logprob=r[6],
            finish=r[7],
            self_score=r[8],
            score_kind=r[9],
            soft_score=r[21],
            chosen=bool(r[10]),
            rejected=bool(r[11]),
            rolled_back=bool(r[12]),
            is_final=bool(r[13]),
            final_answer=r[14],
            parse_status=r[15],
            correct=r[16],
            step_check=r[17],
        )
        for r in nodes
    )
    judgment_rows = tuple(
        JudgmentRow(
            judgment_id=int(r[0]),
            mode=str(r[1] or ""),
            node_a=r[2],
            node_b=r[3],
            order=int(r[4] or 0),
            check_text=r[5],
            raw_output=r[6],
            verdict=r[7],
            p_a=r[8],
            p_b=r[9],
            winner=r[10],
            expected=r[11],
            verdict_source=r[12],
            probs_at=r[13],
        )
        for r in judgments
    )
    return TreeDetail(
        tree_id=int(tree_id),
        iteration=int(iteration),
        phase=str(phase),
        problem_id=str(problem_id),
        question=str(problem[0]) if problem else "",
        answer=None if problem is None else problem[1],
        nodes=node_rows,
        judgments=judgment_rows,
        flags=tuple(_flag(f) for f in flags),
        by_id={n.node_id: n for n in node_rows},
    )
