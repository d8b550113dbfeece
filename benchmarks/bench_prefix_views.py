"""Step 3 of 3-op problems under other views of the same solution prefix, against the whole prefix.

    python benchmarks/bench_prefix_views.py [--model default | --checkpoint DIR] [--problems 400]
        [--seed 12345] [--threads 1]

The base's 3-op errors are nearly all one slip: carrying step 2's result into step 3. A question
rewrite cannot decorrelate it (every wording shares the solution prefix), so this asks whether a
different view of the prefix does. On held-out problems whose greedy steps 1-2 pass the step
checker, the greedy step 3 is written after each view and checked against the task's step checker:

- ``whole``: the question and steps 1-2 as the model wrote them (the baseline, the model's own step);
- ``last step only``: step 1 dropped, the header kept (``Step 2: …`` then ``Step 3:``);
- ``last step, renumbered``: step 2 shown as ``Step 1:``, then ``Step 2:``;
- ``+ operands swapped``: ``6 + 16 = 22`` for ``16 + 6 = 22`` in steps 1-2;
- ``no spaces``: steps 1-2 written without spaces (a form the model never saw).

For each view: the share of right steps 3, and against the whole prefix the problems right under
both, under one only, under neither, and how often the two write the same step.
"""

from __future__ import annotations

import argparse
import os
import re
from collections import Counter
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from search_vs_greedy import load_model  # benchmarks/search_vs_greedy.py

from presrm.model.generation import generate_steps
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.steps import parse_step, render_prefix, step_content, step_header
from presrm.tasks import load_task

View = Callable[[list[str]], list[str]]


def _swap_plus(step: str) -> str:
    return re.sub(r"(\d+) \+ (\d+) =", r"\2 + \1 =", step)


def _no_spaces(step: str) -> str:
    header, content = step.split(":", 1)
    return f"{header}: " + content.strip().replace(" ", "")


VIEWS: dict[str, View] = {
    "whole": lambda s: s,
    "last step only": lambda s: s[1:],
    "last step, renumbered": lambda s: ["Step 1: " + step_content(s[1])],
    "+ operands swapped": lambda s: [_swap_plus(x) for x in s],
    "no spaces": lambda s: [_no_spaces(x) for x in s],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--checkpoint", help="a presrm checkpoint directory instead of --model")
    parser.add_argument("--problems", type=int, default=400)
    parser.add_argument("--seed", type=int, default=12345, help="seed of the held-out problems")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy, where = load_model(args)
    fmt = policy.step_format
    task = load_task("arith", {"n_ops": 3})
    problems = task.sample(args.problems, "eval", seed=args.seed)
    plain = SearchSettings(width=1, max_steps=8, temperature=0.0, max_step_tokens=32)
    trees = search(policy, None, task, problems, plain, LocalIds())
    rows = []
    for problem, tree in zip(problems, trees, strict=True):
        steps = [n.text for n in tree.path]
        if (
            len(steps) >= 3
            and task.check_step(problem, [], steps[0])
            and task.check_step(problem, steps[:1], steps[1])
        ):
            rows.append((problem, steps[:2]))
    print(
        f"{where}, arith n_ops=3: {len(rows)} of {len(problems)} held-out problems have right greedy steps 1-2\n"
    )
    written: dict[str, list[str]] = {}
    right: dict[str, list[bool]] = {}
    for name, view in VIEWS.items():
        shown = [view(prefix) for _, prefix in rows]
        prefixes = [
            render_prefix(policy.solution_prompt(p.question), s, fmt) + step_header(len(s) + 1)
            for (p, _), s in zip(rows, shown, strict=True)
        ]
        out = generate_steps(policy, prefixes, 1, temperature=0.0, max_new_tokens=32, seed=0)
        contents = [
            parse_step(o[0].text, len(s) + 1, truncated=o[0].finish == "length", fmt=fmt).content
            for o, s in zip(out, shown, strict=True)
        ]
        written[name] = contents
        # The written step 3 is judged as a step 3 after the model's own steps 1-2.
        right[name] = [
            bool(task.check_step(p, prefix, "Step 3: " + c))
            for (p, prefix), c in zip(rows, contents, strict=True)
        ]
    print(
        "| view | step 3 right | right under both / whole only / view only / neither | same step as whole |"
    )
    print("|---|---:|---:|---:|")
    for name in VIEWS:
        both = Counter(zip(right["whole"], right[name], strict=True))
        same = sum(a == b for a, b in zip(written["whole"], written[name], strict=True)) / len(rows)
        share = sum(right[name]) / len(rows)
        cells = (
            f"{both[(True, True)]} / {both[(True, False)]} / {both[(False, True)]} / {both[(False, False)]}"
        )
        print(f"| {name} | {100 * share:.1f} % | {cells} | {100 * same:.0f} % |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
