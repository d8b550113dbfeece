"""Tree search on the tiny model: stored trees, both-orders rule, ties and rollback, bad judge text."""

from __future__ import annotations

from pathlib import Path

import pytest

from presrm.config import RunConfig
from presrm.search.judge import JudgeResult, PairRequest, PointRequest
from presrm.search.modes.pairwise import PairwiseMode
from presrm.search.modes.pointwise import PointwiseMode
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.store.reader import query_rows
from presrm.store.rows import judgment_columns, node_columns
from presrm.store.writer import RunStore


class ScriptedJudge:
    """A fixed verdict source on the real search code path (no model API is mocked)."""

    mode = "pairwise"

    def __init__(self, decide, raw: str | None = None) -> None:
        self.decide = decide
        self.raw = raw
        self.calls: list[PairRequest] = []

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        self.calls.extend(requests)
        out = []
        for r in requests:
            verdict = self.decide(r)
            raw = self.raw if self.raw is not None else f"Check: scripted. [[{verdict}]]"
            out.append(JudgeResult(verdict, raw, "scripted", None, None))
        return out

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        raise NotImplementedError


def longer_wins(r: PairRequest) -> str:
    # Consistent in both orders: depends on the steps, not on their position.
    return "A" if (len(r.step_a), r.step_a) > (len(r.step_b), r.step_b) else "B"


def test_tree_w3_is_built_stored_and_rebuilt_by_sql(tiny, arith, tmp_path: Path) -> None:
    problems = arith.sample(3, "train", seed=1)
    store = RunStore.create(tmp_path / "run.duckdb", RunConfig(model="tiny", width=3))
    judge = ScriptedJudge(longer_wins)
    settings = SearchSettings(width=3, max_steps=4, max_step_tokens=12, seed=3)
    trees = search(tiny, PairwiseMode(judge), arith, problems, settings, store)
    store.append_columns("nodes", node_columns(trees, iteration=1, phase="train"))
    store.append_columns("judgments", judgment_columns(trees, iteration=1, phase="train"))
    store.flush()
    for tree in trees:
        assert tree.done
        assert len(tree.path) == 4  # random tiny model never finishes: stops at max_steps
        assert all(n.chosen for n in tree.path)
        # every expansion produced `width` candidates
        assert len(tree.nodes) == 3 * tree.expansions
        rows = query_rows(
            store.path,
            """WITH RECURSIVE t AS (
                   SELECT node_id, parent_id, depth, text, self_score, chosen FROM nodes
                   WHERE tree_id = ? AND parent_id IS NULL
                   UNION ALL
                   SELECT n.node_id, n.parent_id, n.depth, n.text, n.self_score, n.chosen
                   FROM nodes n JOIN t ON n.parent_id = t.node_id)
               SELECT * FROM t ORDER BY node_id""",
            [tree.tree_id],
        )
        reachable = {n.node_id for n in tree.nodes if n.parent_id is None}
        changed = True
        while changed:
            new = {n.node_id for n in tree.nodes if n.parent_id in reachable} - reachable
            reachable |= new
            changed = bool(new)
        expected = sorted(
            (n.node_id, n.parent_id, n.depth, n.text, n.self_score, n.chosen)
            for n in tree.nodes
            if n.node_id in reachable
        )
        assert rows == expected
        # chosen = the longest distinct candidate of its group
        for node in tree.path:
            group = [n for n in tree.nodes if n.parent_id == node.parent_id and n.expansion == node.expansion]
            assert node.text == max((n.text for n in group), key=lambda t: (len(t), t))
    pairs = query_rows(store.path, "SELECT count(*), count(*) FILTER (WHERE consistent) FROM judge_pairs")[0]
    assert pairs[0] > 0 and pairs[0] == pairs[1]
    n_steps = query_rows(store.path, "SELECT sum(n_steps) FROM chosen_paths")[0][0]
    assert n_steps == sum(len(t.path) for t in trees)


def test_position_biased_judge_is_inconsistent_so_all_tie_and_roll_back(tiny, arith) -> None:
    problems = arith.sample(2, "train", seed=2)
    judge = ScriptedJudge(lambda r: "A")  # always the first shown: both orders disagree
    settings = SearchSettings(width=3, max_steps=5, max_step_tokens=8, seed=4)
    trees = search(tiny, PairwiseMode(judge), arith, problems, settings, LocalIds())
    for tree in trees:
        assert tree.expansions == 5
        assert tree.path == []  # nothing is ever accepted
        assert not any(n.chosen for n in tree.nodes)
        scored = [n.self_score for n in tree.nodes if n.self_score is not None]
        assert scored and all(s == pytest.approx(0.5) for s in scored)
        for j in tree.judgments:
            assert j.winner == j.node_a


class BiasedProbsJudge:
    """Always writes [[A]] (position bias), but P(A) is higher when A is the longer step."""

    mode = "pairwise"

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        out = []
        for r in requests:
            p_a = 0.9 if longer_wins(r) == "A" else 0.7
            out.append(JudgeResult("A", "[[A]]", None, p_a, 1 - p_a, "text", "verdict"))
        return out

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        raise NotImplementedError


@pytest.mark.parametrize("rule", ["consistent", "debiased"])
def test_debiased_rule_decides_the_pairs_a_position_biased_judge_leaves_tied(tiny, arith, rule: str) -> None:
    problems = arith.sample(2, "train", seed=2)
    settings = SearchSettings(width=3, max_steps=3, max_step_tokens=8, seed=4, pair_rule=rule)
    trees = search(tiny, PairwiseMode(BiasedProbsJudge()), arith, problems, settings, LocalIds())
    for tree in trees:
        assert all(j.verdict == "A" and j.winner == j.node_a for j in tree.judgments)
        groups = {(n.parent_id, n.expansion) for n in tree.nodes}
        if rule == "consistent":  # the orders never agree: every pair ties, nothing is accepted
            assert tree.path == [] and len(groups) == 3
            continue
        # The longer step's P(win) over both orders is (0.9 + 0.3) / 2 = 0.6: it wins every pair.
        assert len(tree.path) == 3 and all(not n.rolled_back for n in tree.nodes)
        for node in tree.path:
            group = [n for n in tree.nodes if (n.parent_id, n.expansion) == (node.parent_id, node.expansion)]
            texts = sorted({n.text for n in group}, key=lambda t: (len(t), t))
            assert node.text == texts[-1] and node.self_score == pytest.approx(1.0)
            shortest = next(n for n in group if n.text == texts[0])
            assert len(texts) == 1 or (shortest.rejected and shortest.self_score == pytest.approx(0.0))


def test_rollback_drops_the_previous_step_and_its_pair(tiny, arith) -> None:
    problems = arith.sample(1, "train", seed=5)

    # consistent at depth 1, position-biased (all ties) at depth 2 -> roll back depth 1
    def decide(r: PairRequest) -> str:
        return longer_wins(r) if not r.previous_steps else "A"

    settings = SearchSettings(width=3, max_steps=4, max_step_tokens=8, seed=6)
    (tree,) = search(tiny, PairwiseMode(ScriptedJudge(decide)), arith, problems, settings, LocalIds())
    first_steps = [n for n in tree.nodes if n.depth == 1 and n.chosen]
    # expansions alternate: accept step 1, tie at step 2 (roll back), accept a new step 1, tie again
    assert len(first_steps) == 2
    assert all(n.rolled_back for n in first_steps)
    assert tree.path == []


def test_unparseable_judge_output_is_kept_and_counts_as_no_verdict(tiny, arith) -> None:
    problems = arith.sample(1, "train", seed=7)
    judge = ScriptedJudge(lambda r: None, raw="I think [[C]] '); DROP TABLE nodes; -- [bold]")
    settings = SearchSettings(width=2, max_steps=2, max_step_tokens=6, seed=8)
    (tree,) = search(tiny, PairwiseMode(judge), arith, problems, settings, LocalIds())
    assert tree.judgments
    for j in tree.judgments:
        assert j.verdict is None and j.winner is None
        assert j.raw_output == "I think [[C]] '); DROP TABLE nodes; -- [bold]"


def test_width_one_is_plain_decoding_without_judge(tiny, arith) -> None:
    problems = arith.sample(2, "eval", seed=0)
    settings = SearchSettings(width=1, max_steps=3, temperature=0.0, max_step_tokens=8)
    trees = search(tiny, None, arith, problems, settings, LocalIds())
    for tree in trees:
        assert len(tree.path) == 3 and len(tree.nodes) == 3
        assert tree.judgments == []
        assert all(n.self_score is None for n in tree.nodes)


class ProbabilityJudge(ScriptedJudge):
    """Scripted P(A) / P(B): each step has a fixed strength; P(A) = strength(A) / (sum)."""

    def __init__(self, strength) -> None:
        super().__init__(lambda r: None)
        self.strength = strength

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        out = []
        for r in requests:
            a, b = self.strength(r.step_a), self.strength(r.step_b)
            # unnormalised on purpose: the search renormalises over the two labels
            out.append(JudgeResult("A" if a >= b else "B", "scripted", None, a * 0.8, b * 0.8))
        return out


def test_soft_score_is_the_mean_probability_of_beating_each_sibling(tiny, arith) -> None:
    problems = arith.sample(2, "train", seed=11)
    strength = lambda text: 1.0 + (sum(map(ord, text)) % 7)  # noqa: E731 - a fixed, order-free strength
    settings = SearchSettings(width=4, max_steps=3, max_step_tokens=10, seed=12)
    trees = search(tiny, PairwiseMode(ProbabilityJudge(strength)), arith, problems, settings, LocalIds())
    checked = 0
    for tree in trees:
        groups: dict[tuple, list] = {}
        for n in tree.nodes:
            groups.setdefault((n.parent_id, n.expansion), []).append(n)
        for group in groups.values():
            distinct = {n.text for n in group}
            if len(distinct) < 2:
                assert all(n.soft_score is None for n in group)
                continue
            for n in group:
                others = [t for t in distinct if t != n.text]
                expected = sum(strength(n.text) / (strength(n.text) + strength(t)) for t in others) / len(
                    others
                )
                assert n.soft_score == pytest.approx(expected)
                checked += 1
            # Graded where the win rate is not: distinct strengths give distinct soft scores.
            by_text = {n.text: n for n in group}
            if len({strength(t) for t in distinct}) == len(distinct):
                assert len({round(by_text[t].soft_score, 9) for t in distinct}) == len(distinct)
    assert checked


def test_greedy_candidate_is_kept_unless_another_scores_clearly_higher(tiny, arith) -> None:

    class Longest:
        """A pointwise judge that likes longer steps: P(Yes) = len / 100."""

        mode = "pointwise"

        def pairwise(self, requests):  # pragma: no cover - not called in pointwise mode
            raise AssertionError

        def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
            return [
                JudgeResult("Yes", "Yes", None, len(r.step) / 100, 1 - len(r.step) / 100) for r in requests
            ]

    problems = arith.sample(3, "train", seed=11)
    greedy = search(
        tiny,
        None,
        arith,
        problems,
        SearchSettings(width=1, temperature=0.0, max_steps=3, max_step_tokens=8),
        LocalIds(),
    )
    kept = search(
        tiny,
        PointwiseMode(Longest()),
        arith,
        problems,
        SearchSettings(
            width=3, max_steps=3, max_step_tokens=8, seed=5, greedy_candidate=True, switch_margin=1.0
        ),
        LocalIds(),
    )
    # a margin no score difference can exceed: the search follows greedy decoding exactly
    assert [[n.text for n in t.path] for t in kept] == [[n.text for n in t.path] for t in greedy]
    assert not any(n.rolled_back for t in kept for n in t.nodes)
    switched = search(
        tiny,
        PointwiseMode(Longest()),
        arith,
        problems,
        SearchSettings(
            width=3, max_steps=3, max_step_tokens=8, seed=5, greedy_candidate=True, switch_margin=0.0
        ),
        LocalIds(),
    )
    for tree in switched:
        for node in tree.path:  # each accepted step is at least as long as its expansion's greedy step
            first = next(n for n in tree.nodes if n.depth == node.depth and n.expansion == node.expansion)
            assert len(node.text) >= len(first.text)
