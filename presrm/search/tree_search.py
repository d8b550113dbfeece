"""The per-problem step tree: expand ``width`` candidates, self-judge, select, roll back.

One round, for every unfinished problem of a batch at once:

1. sample ``width`` candidate next steps after the accepted prefix (one batched call), after
   the judge mode's own first candidates if it has any (the paraphrase votes);
2. the judge mode (presrm.search.modes) judges the candidates (pairwise in both orders, or
   pointwise), all problems in one batched judge call; candidates with identical text are
   judged once and share a score;
3. score, e.g.: win rate among the distinct siblings (a pair whose two orders disagree, or
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
from typing import Any

from presrm.model.generation import generate_steps
from presrm.model.policy import Policy
from presrm.search.modes.base import JudgeMode
from presrm.search.tree import Expansion, IdSource, Node, SearchSettings, Tree
from presrm.steps import StepFormat, parse_step, render_prefix, step_header
from presrm.tasks.base import Problem, Task


def _round_seed(seed: int, round_no: int) -> int:
    return random.Random(f"{seed}:{round_no}").randrange(2**63)


def search(
    policy: Policy,
    judge: JudgeMode | None,
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
        judging = judge if settings.width > 1 else None  # width 1 is plain decoding: no judge
        first = (
            judging.first_candidates([(t.problem.question, tuple(n.text for n in t.path)) for t in active])
            if judging is not None
            else None
        )
        if first is not None:
            clock["judging"] = clock.get("judging", 0.0) + time.perf_counter() - t0
            t0 = time.perf_counter()
            samples = _with_samples(policy, prefixes, first, settings, seed)
        else:
            samples = _candidates(policy, prefixes, settings, seed)
        groups = [
            _make_group(t, cands, task, ids, policy.step_format, len(first[i]) if first is not None else 0)
            for i, (t, cands) in enumerate(zip(active, samples, strict=True))
        ]
        t1 = time.perf_counter()
        clock["sampling"] = clock.get("sampling", 0.0) + t1 - t0
        if judging is not None:
            judging.score(groups, ids, settings)
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
    policy: Policy, prefixes: list[str], first: list[list[Any]], settings: SearchSettings, seed: int
) -> list[list[Any]]:
    """The judge mode's own candidates first (the paraphrase votes), then samples up to ``width``."""
    extra = settings.width - min(len(v) for v in first)
    if extra <= 0:
        return first
    rest = _sample(policy, prefixes, settings, extra, settings.temperature, seed)
    return [v + r[: max(0, settings.width - len(v))] for v, r in zip(first, rest, strict=True)]


def _make_group(
    tree: Tree, candidates: list[Any], task: Task, ids: IdSource, fmt: StepFormat, n_first: int
) -> Expansion:
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
    return Expansion(tree, nodes, distinct, n_first)


def _select(group: Expansion, settings: SearchSettings) -> None:
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


def _keep_greedy(group: Expansion, margin: float) -> tuple[Node, Node | None]:
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
