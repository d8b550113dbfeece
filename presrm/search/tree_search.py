"""The per-problem step tree: expand ``width`` candidates, self-judge, select, roll back.

One round, for every unfinished problem of a batch at once:

1. sample ``width`` candidate next steps after the accepted prefix (one batched call);
2. judge the candidates (pairwise in both orders, or pointwise), all problems in one
   batched judge call; candidates with identical text are judged once and share a score;
3. score: win rate among the distinct siblings (a pair whose two orders disagree, or
   that has no verdict, is a tie worth 0.5 to each — or, with ``pair_rule = "debiased"``,
   a win for the step whose probability of winning, averaged over both orders, is higher:
   a position-biased judge names the first-shown step either way, and averaging the two
   orders cancels that bias) or P(Yes); next to it the graded
   ``soft_score`` (the judge's mean probability of beating a sibling), because the win
   rate of a chosen step is nearly always 1 and says nothing about how sure the judge was;
4. if the distinct candidates all score the same, roll back: drop the last accepted
   step (it is marked ``rolled_back``, so its preference pair is dropped too) and
   re-expand its parent; otherwise accept the best (``chosen``) and mark the worst
   (``rejected``) — the (chosen, rejected) pair is the step preference pair;
5. stop at a final answer or after ``max_steps`` expansions.

A single distinct candidate (the model is sure) is accepted without a pair.
``width == 1`` is plain step-by-step decoding (no judge): greedy evaluation uses it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

from presrm.model.generation import generate_steps
from presrm.model.policy import Policy
from presrm.search.check_judge import MODE as CHECK_MODE
from presrm.search.judge import PairRequest, PointRequest, StepJudge
from presrm.search.paraphrase import MODE, ParaphraseJudge, vote_shares
from presrm.search.tree import IdSource, Judgment, Node, SearchSettings, Tree
from presrm.steps import StepFormat, parse_step, render_prefix, step_header
from presrm.tasks.base import Problem, Task

# Judges that score each candidate on its own; the score kind each stores with its nodes.
SCORE_KINDS = {"pointwise": "p_yes", CHECK_MODE: "check_share"}
POINTWISE_MODES = frozenset(SCORE_KINDS)


@dataclass
class _Group:
    """The candidates of one expansion round of one tree."""

    tree: Tree
    nodes: list[Node]
    distinct: list[Node]  # first node of each distinct text
    scores: dict[str, float] = field(default_factory=dict)


def _round_seed(seed: int, round_no: int) -> int:
    return random.Random(f"{seed}:{round_no}").randrange(2**63)


def search(
    policy: Policy,
    judge: StepJudge | None,
    task: Task,
    problems: list[Problem],
    settings: SearchSettings,
    ids: IdSource,
    *,
    timings: dict[str, float] | None = None,
) -> list[Tree]:
    """Grow one tree per problem, all problems batched together. Returns the trees.

    ``timings``, when given, accumulates wall seconds spent in ``sampling`` and ``judging``.
    """
    clock = timings if timings is not None else {}
    if settings.width > 1 and judge is None:
        raise ValueError("width > 1 needs a judge")
    tree_ids = ids.new_ids("tree", len(problems))
    trees = [Tree(tid, p) for tid, p in zip(tree_ids, problems, strict=True)]
    prompts = {t.tree_id: policy.solution_prompt(t.problem.question) for t in trees}
    round_no = 0
    while True:
        active = [t for t in trees if not t.done]
        if not active:
            break
        prefixes = [
            render_prefix(prompts[t.tree_id], [n.text for n in t.path], policy.step_format)
            + step_header(len(t.path) + 1)
            for t in active
        ]
        t0 = time.perf_counter()
        seed = _round_seed(settings.seed, round_no)
        voting = isinstance(judge, ParaphraseJudge) and settings.width > 1
        if voting:
            assert isinstance(judge, ParaphraseJudge)
            votes = judge.votes([(t.problem.question, tuple(n.text for n in t.path)) for t in active])
            clock["judging"] = clock.get("judging", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            samples = _with_samples(policy, prefixes, votes, settings, seed)
        else:
            samples = _candidates(policy, prefixes, settings, seed)
        groups = [
            _make_group(t, cands, task, ids, policy.step_format)
            for t, cands in zip(active, samples, strict=True)
        ]
        t1 = time.perf_counter()
        clock["sampling"] = clock.get("sampling", 0.0) + t1 - t0
        if voting:
            assert isinstance(judge, ParaphraseJudge)
            graded = judge.wording_probs(
                [
                    (
                        g.tree.problem.question,
                        tuple(n.text for n in g.tree.path),
                        [n.text for n in g.distinct],
                    )
                    for g in groups
                ]
            )
            for group, vote, probs in zip(groups, votes, graded, strict=True):
                _judge_votes(group, len(vote), probs, judge.select_by, ids)
            clock["judging"] = clock.get("judging", 0.0) + time.perf_counter() - t1
        elif settings.width > 1 and judge is not None:
            _judge_groups(groups, judge, ids, settings.pair_rule)
            clock["judging"] = clock.get("judging", 0.0) + time.perf_counter() - t1
        for group in groups:
            _select(group, settings)
        round_no += 1
    return trees


def _sample(
    policy: Policy, prefixes: list[str], settings: SearchSettings, n: int, temperature: float, seed: int
) -> list[list[Any]]:
    return generate_steps(
        policy,
        prefixes,
        n,
        temperature=temperature,
        top_p=settings.top_p,
        max_new_tokens=settings.max_step_tokens,
        seed=seed,
        max_rows=settings.max_rows,
    )


def _candidates(policy: Policy, prefixes: list[str], settings: SearchSettings, seed: int) -> list[list[Any]]:
    """``width`` candidate next steps per prefix; the first one greedy with ``greedy_candidate``."""
    if not settings.greedy_candidate or settings.width == 1:
        return _sample(policy, prefixes, settings, settings.width, settings.temperature, seed)
    greedy = _sample(policy, prefixes, settings, 1, 0.0, seed)
    rest = _sample(policy, prefixes, settings, settings.width - 1, settings.temperature, seed)
    return [g + r for g, r in zip(greedy, rest, strict=True)]


def _with_samples(
    policy: Policy, prefixes: list[str], votes: list[list[Any]], settings: SearchSettings, seed: int
) -> list[list[Any]]:
    """The paraphrase judge's votes as the first candidates, then samples up to ``width``."""
    extra = settings.width - min(len(v) for v in votes)
    if extra <= 0:
        return votes
    rest = _sample(policy, prefixes, settings, extra, settings.temperature, seed)
    return [v + r[: max(0, settings.width - len(v))] for v, r in zip(votes, rest, strict=True)]


def _make_group(tree: Tree, candidates: list[Any], task: Task, ids: IdSource, fmt: StepFormat) -> _Group:
    depth = len(tree.path) + 1
    parent = tree.path[-1].node_id if tree.path else None
    previous = [n.text for n in tree.path]
    node_ids = ids.new_ids("node", len(candidates))
    nodes: list[Node] = []
    for node_id, sample in zip(node_ids, candidates, strict=True):
        parsed = parse_step(sample.text, depth, truncated=sample.finish == "length", fmt=fmt)
        nodes.append(
            Node(
                node_id=node_id,
                parent_id=parent,
                depth=depth,
                expansion=tree.expansions,
                text=parsed.text,
                n_tokens=sample.n_tokens,
                logprob=sample.logprob,
                finish=sample.finish,
                parse_status=parsed.status,
                is_final=parsed.is_final,
                final_answer=parsed.final_answer,
                step_check=task.check_step(tree.problem, previous, parsed.text),
                correct=task.check_answer(tree.problem, parsed.final_answer) if parsed.is_final else None,
            )
        )
    tree.nodes.extend(nodes)
    distinct = list({n.text: n for n in reversed(nodes)}.values())[::-1]
    return _Group(tree, nodes, distinct)


def _expected(a: Node, b: Node) -> str | None:
    """The right pairwise verdict when the step checker tells exactly one side correct."""
    if a.step_check is None or b.step_check is None or a.step_check == b.step_check:
        return None
    return "A" if a.step_check else "B"


def _judge_groups(groups: list[_Group], judge: StepJudge, ids: IdSource, pair_rule: str) -> None:
    if judge.mode in POINTWISE_MODES:
        _judge_pointwise(groups, judge, ids)
        return
    requests: list[PairRequest] = []
    meta: list[tuple[_Group, Node, Node, int]] = []
    for g in groups:
        previous = tuple(n.text for n in g.tree.path)
        for i, a in enumerate(g.distinct):
            for b in g.distinct[i + 1 :]:
                for order, (x, y) in enumerate(((a, b), (b, a))):
                    requests.append(PairRequest(g.tree.problem.question, previous, x.text, y.text))
                    meta.append((g, x, y, order))
    results = judge.pairwise(requests)
    judgment_ids = ids.new_ids("judgment", len(results))
    wins: dict[int, dict[str, float]] = {id(g): {n.text: 0.0 for n in g.distinct} for g in groups}
    # The graded score: the judge's own probability that a step beats each sibling, averaged
    # over both orders (a verdict without probabilities counts 1 / 0, no verdict 0.5).
    soft: dict[int, dict[str, float]] = {id(g): {n.text: 0.0 for n in g.distinct} for g in groups}
    # Order 0 of each pair: its winner and P(its A side wins), until order 1 comes.
    first: dict[tuple[int, int], tuple[int | None, float]] = {}
    for jid, (g, x, y, order), res in zip(judgment_ids, meta, results, strict=True):
        winner = x.node_id if res.verdict == "A" else y.node_id if res.verdict == "B" else None
        g.tree.judgments.append(
            Judgment(
                jid,
                judge.mode,  # the mode actually used: the likelihood comparison is no 'pairwise' judge
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
        p_x, p_y = _win_probabilities(res.verdict, res.p_a, res.p_b)
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
    for g in groups:
        others = max(1, len(g.distinct) - 1)
        g.scores = {text: w / others for text, w in wins[id(g)].items()}
        for n in g.nodes:
            if len(g.distinct) > 1:
                n.self_score = g.scores[n.text]
                n.score_kind = "win_rate"
                n.soft_score = soft[id(g)][n.text] / others


def _win_probabilities(verdict: str | None, p_a: float | None, p_b: float | None) -> tuple[float, float]:
    """P(the A side wins), P(the B side wins) of one judge call, normalised to sum to 1."""
    if p_a is not None and p_b is not None and p_a + p_b > 0:
        return p_a / (p_a + p_b), p_b / (p_a + p_b)
    if verdict == "A":
        return 1.0, 0.0
    if verdict == "B":
        return 0.0, 1.0
    return 0.5, 0.5


def _judge_pointwise(groups: list[_Group], judge: StepJudge, ids: IdSource) -> None:
    requests: list[PointRequest] = []
    meta: list[tuple[_Group, Node]] = []
    for g in groups:
        previous = tuple(n.text for n in g.tree.path)
        for n in g.distinct:
            requests.append(PointRequest(g.tree.problem.question, previous, n.text))
            meta.append((g, n))
    results = judge.pointwise(requests)
    for jid, (g, n), res in zip(ids.new_ids("judgment", len(results)), meta, results, strict=True):
        expected = None if n.step_check is None else ("Yes" if n.step_check else "No")
        g.tree.judgments.append(
            Judgment(
                jid,
                judge.mode,
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
    for g in groups:
        for n in g.nodes:
            n.self_score = g.scores[n.text]
            n.score_kind = SCORE_KINDS[judge.mode]
            n.soft_score = n.self_score  # P(Yes) is graded already


def _judge_votes(g: _Group, n_votes: int, probs: dict[str, float], select_by: str, ids: IdSource) -> None:
    """Score every candidate by its share of the votes (the first ``n_votes`` nodes: the greedy
    steps under the question and its rewrites) and, graded, by its probability averaged over the
    same wordings (``probs``); the search selects by the one ``select_by`` names. One judgment
    row per distinct candidate."""
    shares = vote_shares([n.text for n in g.nodes], n_votes)
    for jid, n in zip(ids.new_ids("judgment", len(g.distinct)), g.distinct, strict=True):
        share = shares[n.text]
        expected = None if n.step_check is None else ("Yes" if n.step_check else "No")
        verdict = "Yes" if share >= 0.5 else "No"
        raw = f"{round(share * n_votes)} of {n_votes} wordings wrote this step; mean P {probs[n.text]:.4f}"
        winner = n.node_id if verdict == "Yes" else None
        g.tree.judgments.append(
            Judgment(jid, MODE, n.node_id, None, 0, None, raw, verdict, share, 1.0 - share, winner, expected)
        )
    selected = probs if select_by == "probability" else shares
    g.scores = {n.text: selected[n.text] for n in g.distinct}
    for n in g.nodes:
        n.self_score = selected[n.text]
        n.soft_score = probs[n.text]
        n.score_kind = "wording_prob" if select_by == "probability" else "vote_share"


def _select(group: _Group, settings: SearchSettings) -> None:
    tree = group.tree
    tree.expansions += 1
    if len(group.distinct) == 1 or not group.scores:
        best = group.distinct[0]
        worst = None
    elif settings.greedy_candidate and settings.switch_margin is not None:
        best, worst = _keep_greedy(group, settings.switch_margin)
    else:
        values = [group.scores[n.text] for n in group.distinct]
        if max(values) - min(values) < 1e-9:
            _roll_back(tree, settings)
            return
        # Ties on the best score go to the likelier step (per token), then the first sampled.
        best = max(group.distinct, key=lambda n: (group.scores[n.text], n.logprob / max(1, n.n_tokens)))
        worst = min(group.distinct, key=lambda n: (group.scores[n.text], n.logprob / max(1, n.n_tokens)))
    best.chosen = True
    if worst is not None:
        worst.rejected = True
    tree.path.append(best)
    if best.is_final or tree.expansions >= settings.max_steps:
        tree.done = True


def _keep_greedy(group: _Group, margin: float) -> tuple[Node, Node | None]:
    """The greedy candidate (the expansion's first node) unless another beats it by > ``margin``;
    the rejected side of the pair is the lowest-scored other candidate."""
    greedy = group.nodes[0]
    top = max(group.distinct, key=lambda n: (group.scores[n.text], n is greedy))
    best = top if group.scores[top.text] - group.scores[greedy.text] > margin else greedy
    others = [n for n in group.distinct if n.text != best.text]
    worst = min(others, key=lambda n: group.scores[n.text]) if others else None
    if worst is not None and group.scores[worst.text] >= group.scores[best.text]:
        worst = None  # no preference: the kept step is not better than the others
    return best, worst


def _roll_back(tree: Tree, settings: SearchSettings) -> None:
    """All candidates tie: the prefix itself is doubtful, so drop its last step (and its pair)."""
    if tree.path:
        tree.path.pop().rolled_back = True
    if tree.expansions >= settings.max_steps:
        tree.done = True
