"""The reasoning tree of one problem: its nodes (candidate steps), judgments and accepted path."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from presrm.tasks.base import Problem


class IdSource(Protocol):
    def new_ids(self, kind: str, n: int) -> range: ...


class LocalIds:
    """Id counters for searches that are not written to a run file."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def new_ids(self, kind: str, n: int) -> range:
        start = self._next.get(kind, 0)
        self._next[kind] = start + n
        return range(start, start + n)


@dataclass
class SearchSettings:
    width: int = 6
    max_steps: int = 10
    temperature: float = 0.5
    top_p: float = 0.95
    max_step_tokens: int = 48
    seed: int = 0
    greedy_candidate: bool = False
    """The first candidate of every expansion is the greedy step; the others are sampled."""
    switch_margin: float | None = None
    """With ``greedy_candidate``: keep the greedy step unless another scores more than this above
    it (ties keep it, never roll back). None: the best score wins, all-equal scores roll back."""
    max_rows: int = 64
    """Candidate rows decoded together (the generation batch)."""
    pair_rule: str = "consistent"
    """How a pair judged in both orders scores: ``consistent`` (the paper's: a win only when both
    orders name the same step, else a tie) | ``debiased`` (a pair whose orders disagree goes to the
    step with the higher P(win) averaged over both orders; a tie only when that is exactly 0.5)."""


@dataclass
class Node:
    """One candidate step (a future ``nodes`` row)."""

    node_id: int
    parent_id: int | None
    depth: int
    expansion: int
    text: str
    n_tokens: int
    logprob: float
    finish: str
    parse_status: str
    is_final: bool
    final_answer: str | None
    step_check: bool | None
    correct: bool | None
    self_score: float | None = None
    score_kind: str | None = None
    soft_score: float | None = None
    chosen: bool = False
    rejected: bool = False
    rolled_back: bool = False


@dataclass
class Judgment:
    """One judge call (a future ``judgments`` row)."""

    judgment_id: int
    mode: str
    node_a: int
    node_b: int | None
    order: int
    check_text: str | None
    raw_output: str
    verdict: str | None
    p_a: float | None
    p_b: float | None
    winner: int | None
    expected: str | None
    verdict_source: str | None = None
    probs_at: str | None = None


@dataclass
class Tree:
    """The search tree of one problem."""

    tree_id: int
    problem: Problem
    nodes: list[Node] = field(default_factory=list)
    judgments: list[Judgment] = field(default_factory=list)
    path: list[Node] = field(default_factory=list)
    expansions: int = 0
    done: bool = False

    @property
    def final(self) -> Node | None:
        return self.path[-1] if self.path and self.path[-1].is_final else None

    @property
    def correct(self) -> bool:
        final = self.final
        return bool(final is not None and final.correct)


@dataclass
class Expansion:
    """The candidates of one expansion round of one tree, as a judge mode scores them."""

    tree: Tree
    nodes: list[Node]
    distinct: list[Node]  # first node of each distinct text
    n_first: int = 0
    """How many leading nodes are the judge mode's own first candidates (the paraphrase votes)."""
    scores: dict[str, float] = field(default_factory=dict)
    """The score the search selects by, per distinct text (empty: nothing to select by)."""

    @property
    def question(self) -> str:
        return self.tree.problem.question

    @property
    def previous(self) -> tuple[str, ...]:
        """The accepted steps the candidates follow."""
        return tuple(n.text for n in self.tree.path)
