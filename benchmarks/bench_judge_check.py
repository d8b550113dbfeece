"""Does writing a check before the verdict make the pairwise judge better? Measured, not assumed.

    python benchmarks/bench_judge_check.py                       # default model, 200 held-out pairs
    python benchmarks/bench_judge_check.py --eft 2000 --epochs 2 --lr 3e-4  # a longer, stronger warm-up

The same base model (M0) is warmed up (the loop's IFT + EFT warm-up) three times, once per
form of the judge's EFT target, and each M1 judges the same held-out EFT pairs (eval-split
problems) in both orders with the paper's pairwise prompt, its verdict read from the text it
generates (``judge.mode = pairwise``, ``verdict = text``; ``--verdict probs`` reads P(A) vs P(B)
after the check instead):

* ``bare``       ``[[B]]``
* ``recompute``  ``Check: 7 + 17 = 24 [[B]]``
* ``compare``    ``Check: 7 + 17 = 24; A 25 no, B 24 yes [[B]]``

Printed per form: judge accuracy (right in both orders), order-0 accuracy, parse rate, the
share of "A" verdicts (position bias), greedy accuracy of the warmed-up solver, wall times.
The baseline is the bare verdict measured in the same run.
"""

from __future__ import annotations

import argparse
import copy
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure_default import greedy_accuracy, warmup  # noqa: E402

from presrm.config import apply_overrides, validate_config
from presrm.model.default import RECOMMENDED_CONFIG
from presrm.model.loading import load_policy
from presrm.search.judge import ModelJudge, PairRequest
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_model
from presrm.train.eft import build_eft_pairs

FORMS = ("bare", "recompute", "compare")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--pairs", type=int, default=200, help="held-out EFT pairs (each judged in both orders)")
    ap.add_argument("--eval-problems", type=int, default=200)
    ap.add_argument("--eft", type=int, default=None, help="EFT examples in the warm-up (default: run config)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--lr", type=float, default=None, help="warm-up learning rate (default: run config)")
    ap.add_argument("--forms", default=",".join(FORMS))
    ap.add_argument(
        "--verdict",
        choices=("text", "probs"),
        default="text",
        help="read the verdict from the generated text or from P(A) vs P(B) after the check",
    )
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave torch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    overrides = ["judge.mode=pairwise", f"judge.verdict={args.verdict}"]
    if args.eft is not None:
        overrides.append(f"warmup.eft_examples={args.eft}")
    if args.epochs is not None:
        overrides.append(f"warmup.epochs={args.epochs}")
    if args.lr is not None:
        overrides.append(f"warmup.lr={args.lr}")
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    ensure_model(args.model)
    base = load_policy(args.model, device="cpu", dtype="float32", seed=0)
    rows = []
    for form in args.forms.split(","):
        cfg = validate_config(
            apply_overrides(copy.deepcopy(RECOMMENDED_CONFIG), [*overrides, f"judge.check={form != 'bare'}"])
        )
        task = load_task(cfg.task, cfg.task_options)
        pairs = build_eft_pairs(
            task,
            task.sample(args.pairs, "eval", seed=cfg.seed),
            random.Random(f"{cfg.seed}:eft_test"),
            args.pairs,
        )
        policy = copy.deepcopy(base)
        t0 = time.perf_counter()
        warmup(policy, task, cfg, log, check_form="compare" if form == "bare" else form)
        t1 = time.perf_counter()
        requests = []
        for p in pairs:
            requests += [
                PairRequest(p.question, p.previous_steps, p.step_a, p.step_b),
                PairRequest(p.question, p.previous_steps, p.step_b, p.step_a),
            ]
        results = ModelJudge(policy, cfg.judge).pairwise(requests)
        t2 = time.perf_counter()
        both = order0 = parsed = said_a = 0
        for i, p in enumerate(pairs):
            r0, r1 = results[2 * i], results[2 * i + 1]
            other = "B" if p.verdict == "A" else "A"
            both += r0.verdict == p.verdict and r1.verdict == other
            order0 += r0.verdict == p.verdict
            parsed += (r0.verdict is not None) + (r1.verdict is not None)
            said_a += (r0.verdict == "A") + (r1.verdict == "A")
        acc, _ = greedy_accuracy(policy, task, task.sample(args.eval_problems, "eval", seed=cfg.seed), cfg)
        n = max(1, len(pairs))
        rows.append(
            (
                form,
                both / n,
                order0 / n,
                parsed / (2 * n),
                said_a / max(1, parsed),
                acc,
                t1 - t0,
                t2 - t1,
                results[0].raw_output,
            )
        )
        log(f"{form}: judge {both / n:.1%}, solver {acc:.1%}, example {results[0].raw_output!r}")
    print(
        f"\nmodel {args.model}, verdict from {args.verdict}, {len(pairs)} held-out pairs x 2 orders, warm-up {cfg.warmup.ift_examples} IFT + "
        f"{cfg.warmup.eft_examples} EFT x {cfg.warmup.epochs} epoch(s), lr {cfg.warmup.lr}\n"
    )
    print(
        "| judge target | judge accuracy (both orders) | order 0 | parsed | 'A' share | greedy accuracy | warm-up | judging |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for form, both, o0, parsed, a_share, acc, tw, tj, _ in rows:
        print(
            f"| {form} | {both:.1%} | {o0:.1%} | {parsed:.1%} | {a_share:.1%} | {acc:.1%} | {tw:.0f}s | {tj:.0f}s |"
        )
    bare = next((r for r in rows if r[0] == "bare"), None)
    if bare is not None:
        for r in rows:
            if r[0] != "bare":
                print(f"{r[0]} vs bare: {r[1] - bare[1]:+.1%} judge accuracy (both orders)")
    for r in rows:
        print(f"example {r[0]}: {r[8]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
