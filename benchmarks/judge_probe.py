"""How good is the model's own step judge inside the tree search? (issue 4)

    python benchmarks/judge_probe.py [--model default] [--problems 20] [--width 6]

Runs the self-judged search on arith training problems and prints: nodes, judge calls,
judge consistency across the two presentation orders, and agreement with the task's
step checker (on pairs where the checker says exactly one step is right), plus how often
the chosen step passes the checker compared with a random candidate.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from presrm.config import JudgeConfig
from presrm.model.loading import load_policy
from presrm.search.judges import make_judge
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--width", type=int, default=6)
    parser.add_argument("--mode", choices=["auto", "pairwise", "likelihood", "pointwise"], default="auto")
    parser.add_argument("--verdict", choices=["text", "probs"], default="text")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ensure_model(args.model)
    policy = load_policy(args.model)
    task = load_task("arith")
    problems = task.sample(args.problems, "train", seed=args.seed)
    settings = SearchSettings(width=args.width, seed=args.seed)
    cfg = JudgeConfig(mode=args.mode, verdict=args.verdict)
    judge = make_judge(policy, cfg, task, max_step_tokens=settings.max_step_tokens)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    trees = search(
        policy,
        judge,
        task,
        problems,
        settings,
        LocalIds(),
        timings=timings,
    )
    wall = time.perf_counter() - start

    nodes = [n for t in trees for n in t.nodes]
    judgments = [j for t in trees for j in t.judgments]
    by_pair: dict[tuple[int, int], dict[int, object]] = {}
    expected: dict[tuple[int, int], int | None] = {}
    for t in trees:
        checks = {n.node_id: n.step_check for n in t.nodes}
        for j in t.judgments:
            assert j.node_b is not None
            key = (min(j.node_a, j.node_b), max(j.node_a, j.node_b))
            by_pair.setdefault(key, {})[j.order] = j.winner
            a, b = checks[key[0]], checks[key[1]]
            expected[key] = (
                (key[0] if a else key[1]) if (a is not None and b is not None and a != b) else None
            )
    complete = {k: v for k, v in by_pair.items() if 0 in v and 1 in v}
    consistent = [k for k, v in complete.items() if v[0] is not None and v[0] == v[1]]
    checkable = [k for k in complete if expected[k] is not None]
    agree = [k for k in checkable if complete[k][0] == complete[k][1] == expected[k]]
    unparseable = sum(j.verdict is None for j in judgments)
    chosen = [n for t in trees for n in t.path]
    checked_chosen = [n.step_check for n in chosen if n.step_check is not None]
    checked_all = [n.step_check for n in nodes if n.step_check is not None]

    def pct(a: int, b: int) -> str:
        return f"{a}/{b} = {100 * a / b:.1f}%" if b else "n/a"

    print(
        f"model {args.model}, {len(problems)} arith problems, width {args.width}, judge {judge.name}"
        + (f", verdict from {args.verdict}" if judge.name == "pairwise" else "")
    )
    print(f"nodes                          {len(nodes)}")
    print(f"judge calls                    {len(judgments)}  (unparseable: {unparseable})")
    print(f"judge consistency (2 orders)   {pct(len(consistent), len(complete))}")
    print(f"agreement with step checker    {pct(len(agree), len(checkable))}  (pairs with one right step)")
    print(f"chosen steps passing checker   {pct(sum(checked_chosen), len(checked_chosen))}")
    print(f"all candidates passing checker {pct(sum(checked_all), len(checked_all))}")
    print(f"solved                         {pct(sum(t.correct for t in trees), len(trees))}")
    print(
        f"wall {wall:.1f}s: sampling {timings.get('sampling', 0):.1f}s, judging {timings.get('judging', 0):.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
