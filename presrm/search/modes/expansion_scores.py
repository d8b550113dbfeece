"""Scoring the candidates of search expansions from a verdict source: round robin over pairs,
or each candidate alone."""

from __future__ import annotations

from collections.abc import Sequence

from presrm.search.judge import PairRequest, PointRequest, StepJudge
from presrm.search.tree import Expansion, IdSource, Judgment, Node


def _expected(a: Node, b: Node) -> str | None:
    """The right pairwise verdict when the step checker tells exactly one side correct."""
    if a.step_check is None or b.step_check is None or a.step_check == b.step_check:
        return None
    return "A" if a.step_check else "B"


def win_probabilities(verdict: str | None, p_a: float | None, p_b: float | None) -> tuple[float, float]:
    """P(the A side wins), P(the B side wins) of one judge call, normalised to sum to 1."""
    if p_a is not None and p_b is not None and p_a + p_b > 0:
        return p_a / (p_a + p_b), p_b / (p_a + p_b)
    if verdict == "A":
        return 1.0, 0.0
    if verdict == "B":
        return 0.0, 1.0
    return 0.5, 0.5


def score_pairs(
    expansions: Sequence[Expansion], verdicts: StepJudge, mode: str, ids: IdSource, pair_rule: str
) -> None:
    """Every pair of distinct siblings in both orders; a candidate's score is its win rate and
    its graded score the judge's mean probability of beating a sibling (see presrm.search.tree_search)."""
    requests: list[PairRequest] = []
    meta: list[tuple[Expansion, Node, Node, int]] = []
    for g in expansions:
        for i, a in enumerate(g.distinct):
            for b in g.distinct[i + 1 :]:
                for order, (x, y) in enumerate(((a, b), (b, a))):
                    requests.append(PairRequest(g.question, g.previous, x.text, y.text))
                    meta.append((g, x, y, order))
    results = verdicts.pairwise(requests)
    judgment_ids = ids.new_ids("judgment", len(results))
    wins: dict[int, dict[str, float]] = {id(g): {n.text: 0.0 for n in g.distinct} for g in expansions}
    # The graded score: the judge's own probability that a step beats each sibling, averaged
    # over both orders (a verdict without probabilities counts 1 / 0, no verdict 0.5).
    soft: dict[int, dict[str, float]] = {id(g): {n.text: 0.0 for n in g.distinct} for g in expansions}
    # Order 0 of each pair: its winner and P(its A side wins), until order 1 comes.
    first: dict[tuple[int, int], tuple[int | None, float]] = {}
    for jid, (g, x, y, order), res in zip(judgment_ids, meta, results, strict=True):
        winner = x.node_id if res.verdict == "A" else y.node_id if res.verdict == "B" else None
        g.tree.judgments.append(
            Judgment(
                jid,
                mode,  # the mode actually used: the likelihood comparison is no 'pairwise' judge
                x.node_id,
                y.node_id,
                order,
                res.check_text,
                res.raw_output,
                res.verdict,
                res.p_a,
                res.p_b,
                winner,
                _expected(x, y),
                res.verdict_source,
                res.probs_at,
            )
        )
        p_x, p_y = win_probabilities(res.verdict, res.p_a, res.p_b)
        soft[id(g)][x.text] += p_x / 2
        soft[id(g)][y.text] += p_y / 2
        key = (min(x.node_id, y.node_id), max(x.node_id, y.node_id))
        if order == 0:
            first[key] = (winner, p_x)
            continue
        # Both orders seen: a consistent verdict is a win, anything else a tie — or, with the
        # debiased rule, a win for the step whose P(win) averaged over both orders is higher.
        agreed = first[key][0] if first[key][0] == winner else None
        if agreed is None and pair_rule == "debiased":
            shown_first = (first[key][1] + p_y) / 2  # P(y wins): y was order 0's A side
            agreed = y.node_id if shown_first > 0.5 else x.node_id if shown_first < 0.5 else None
        by_id = {x.node_id: x, y.node_id: y}
        if agreed is None:
            wins[id(g)][x.text] += 0.5
            wins[id(g)][y.text] += 0.5
        else:
            wins[id(g)][by_id[agreed].text] += 1.0
    for g in expansions:
        others = max(1, len(g.distinct) - 1)
        g.scores = {text: w / others for text, w in wins[id(g)].items()}
        for n in g.nodes:
            if len(g.distinct) > 1:
                n.self_score = g.scores[n.text]
                n.score_kind = "win_rate"
                n.soft_score = soft[id(g)][n.text] / others


def score_points(
    expansions: Sequence[Expansion], verdicts: StepJudge, mode: str, kind: str, ids: IdSource
) -> None:
    """Each distinct candidate judged alone: its score is P(correct) (``p_a``), graded already."""
    requests: list[PointRequest] = []
    meta: list[tuple[Expansion, Node]] = []
    for g in expansions:
        for n in g.distinct:
            requests.append(PointRequest(g.question, g.previous, n.text))
            meta.append((g, n))
    results = verdicts.pointwise(requests)
    for jid, (g, n), res in zip(ids.new_ids("judgment", len(results)), meta, results, strict=True):
        expected = None if n.step_check is None else ("Yes" if n.step_check else "No")
        g.tree.judgments.append(
            Judgment(
                jid,
                mode,
                n.node_id,
                None,
                0,
                None,
                res.raw_output,
                res.verdict,
                res.p_a,
                res.p_b,
                n.node_id if res.verdict == "Yes" else None,
                expected,
                res.verdict_source,
                res.probs_at,
            )
        )
        g.scores[n.text] = res.p_a if res.p_a is not None else 0.5
    for g in expansions:
        for n in g.nodes:
            n.self_score = g.scores[n.text]
            n.score_kind = kind
            n.soft_score = n.self_score
