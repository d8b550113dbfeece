"""The paraphrase judge against greedy decoding of the same model, on the same held-out problems.

    python benchmarks/bench_paraphrase.py [--model default | --checkpoint DIR] [--n-ops 3]
        [--problems 1000] [--paraphrases 2,4,8] [--samples 1] [--threads 2]

Baseline in the same run: greedy step-by-step decoding. For each number of rewrites P, the step
search with P + 1 votes (the question's own greedy step kept unless another wrote more votes) and
``--samples`` extra sampled candidates, the step selected by the vote share or by the graded score
(the step's probability averaged over the wordings; ``--select``): its accuracy, the paired gain over greedy (95 % interval,
with the problems it alone solves and the ones it alone loses), the step AUROC of the graded score
against the task's step checker (every candidate), the solution AUROC of the minimum graded score
along the chosen path against final correctness (the run's ``auroc_min``), and wall time as a
multiple of greedy's.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from search_vs_greedy import greedy_baseline, load_model, row_cells  # benchmarks/search_vs_greedy.py

from presrm.search.modes.paraphrase import ParaphraseMode
from presrm.search.paraphrase import ParaphraseJudge
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.tasks import load_task


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--checkpoint", help="a presrm checkpoint directory instead of --model")
    parser.add_argument("--n-ops", type=int, default=3)
    parser.add_argument("--problems", type=int, default=1000)
    parser.add_argument("--paraphrases", default="2,4,8")
    parser.add_argument("--samples", type=int, default=1, help="sampled candidates beside the votes")
    parser.add_argument("--temperature", type=float, default=0.5)
    parser.add_argument("--max-steps", type=int, default=8)
    parser.add_argument("--max-step-tokens", type=int, default=32)
    parser.add_argument("--seed", type=int, default=12345, help="seed of the held-out problems")
    parser.add_argument("--select", default="votes", help="comma list of: votes, probability")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    policy, where = load_model(args)
    task = load_task("arith", {"n_ops": args.n_ops})
    problems = task.sample(args.problems, "eval", seed=args.seed)
    greedy, greedy_s = greedy_baseline(policy, task, problems, args, where)
    print("| votes (P + 1) | selected by | accuracy [95 %] | − greedy, paired [95 %] | only search / only greedy"
          " | step AUROC | auroc_min | time × greedy |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    runs = [(int(p), by) for p in args.paraphrases.split(",") if p for by in args.select.split(",") if by]
    for p, by in runs:
        judge = ParaphraseMode(
            ParaphraseJudge(
                policy, task, paraphrases=p, seed=0, max_step_tokens=args.max_step_tokens, select_by=by
            )
        )
        settings = SearchSettings(
            width=p + 1 + args.samples,
            max_steps=args.max_steps,
            temperature=args.temperature,
            max_step_tokens=args.max_step_tokens,
            greedy_candidate=True,
            switch_margin=0.0,
        )
        t0 = time.perf_counter()
        trees = search(policy, judge, task, problems, settings, LocalIds())
        seconds = time.perf_counter() - t0
        print(f"| {p + 1} | {by} | " + row_cells(trees, greedy, seconds, greedy_s), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
