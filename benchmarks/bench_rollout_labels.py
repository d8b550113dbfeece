"""How well do Math-Shepherd rollout labels agree with arith's step checker, and what do they cost?

    python benchmarks/bench_rollout_labels.py                    # default model, 40 eval problems, r <= 8
    python benchmarks/bench_rollout_labels.py --problems 100 --rollouts 16 --temperature 0.7

The default model samples solutions of held-out arith problems; at every prefix it samples
``--width`` candidate next steps, and each intermediate candidate gets ``--rollouts`` rollouts to a
final answer (presrm.train.rollout_labels, the code ``warmup.eft_source = "rollouts"`` runs).
Each labeled step's hard label (some rollout reaches the gold answer) and soft label (>= 0.5 of
them do) are compared with the step checker, using the first r rollouts for each r in 1, 2, 4, ...
(rollouts are independent, so the first r are a sample of r). Printed per r: agreement on every
intermediate step and on steps whose earlier steps all pass the checker (right-prefix), recall and precision of
the "bad" label for checker-wrong steps, the judge pairs the hard labels make and the share the
checker agrees with, and the cost (rollouts, generated rollout tokens per labeled step). Final-answer
steps are labeled by their answer check, no rollouts; they are counted apart.
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from presrm.model.loading import load_policy
from presrm.tasks import load_task
from presrm.train.default_recipe import ensure_default
from presrm.train.eft_rollouts import pairs_from_labels
from presrm.train.rollout_labels import RolloutSettings, StepLabel, label_steps


def _rate(hits: int, n: int) -> str:
    return f"{100 * hits / n:5.1f} % ({hits}/{n})" if n else "   -"


def _report(groups: list[list[StepLabel]], r: int, seed: int, clean_ids: set[int]) -> None:
    steps = [x for g in groups for x in g if x.usable and not x.is_final and x.checker is not None]
    hard = sum(x.hard(r) == x.checker for x in steps)
    soft = sum((x.soft(r) >= 0.5) == x.checker for x in steps)
    wrong = [x for x in steps if not x.checker]
    flagged = [x for x in steps if not x.hard(r)]
    caught = sum(not x.hard(r) for x in wrong)
    precise = sum(not x.checker for x in flagged)
    clean = [x for x in steps if id(x) in clean_ids]
    clean_agree = sum(x.hard(r) == x.checker for x in clean)
    # Pairs from the first r rollouts: relabel a copy of the groups with r outcomes each.
    trimmed = [
        [
            StepLabel(
                x.problem,
                x.previous,
                x.text,
                x.is_final,
                x.usable,
                x.outcomes[:r],
                x.rollout_tokens[:r],
                x.final_correct,
                x.checker,
            )
            for x in g
        ]
        for g in groups
    ]
    by_text = {(x.problem.problem_id, x.previous, x.text): x.checker for g in groups for x in g}

    def checker_agreed(label: str) -> tuple[int, int]:
        pairs = pairs_from_labels(trimmed, label, random.Random(seed))
        ok = 0
        for p in pairs:
            good, bad = (p.step_a, p.step_b) if p.verdict == "A" else (p.step_b, p.step_a)
            key = (p.problem_id, p.previous_steps)
            ok += by_text.get((*key, good)) is True and by_text.get((*key, bad)) is False
        return ok, len(pairs)

    hard_pairs, soft_pairs = checker_agreed("hard"), checker_agreed("soft")
    tokens = sum(sum(x.rollout_tokens[:r]) for x in steps)
    print(
        f"r={r:<3} hard agree {_rate(hard, len(steps))}  soft agree {_rate(soft, len(steps))}  "
        f"right-prefix agree {_rate(clean_agree, len(clean))}  bad recall {_rate(caught, len(wrong))}  "
        f"bad precision {_rate(precise, len(flagged))}  pairs checker-agreed: hard {_rate(*hard_pairs)}, "
        f"soft {_rate(*soft_pairs)}  "
        f"cost {r} rollouts, {tokens / max(1, len(steps)):.0f} tokens / step"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", type=int, default=40)
    ap.add_argument("--rollouts", type=int, default=8)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    ensure_default()
    policy = load_policy("default", device="cpu", seed=args.seed)
    task = load_task("arith", {"n_ops": 2, "max_operand": 20, "ops": "+-"})
    problems = task.sample(args.problems, "eval", seed=args.seed)
    settings = RolloutSettings(
        rollouts=args.rollouts,
        width=args.width,
        temperature=args.temperature,
        max_step_tokens=24,
        seed=args.seed,
    )
    started = time.perf_counter()
    groups, cost = label_steps(policy, task, problems, settings)
    wall = time.perf_counter() - started
    labels = [x for g in groups for x in g]
    usable = [x for x in labels if x.usable]
    finals = [x for x in usable if x.is_final]
    steps = [x for x in usable if not x.is_final]
    print(
        f"{len(problems)} problems, {len(groups)} prefixes, {len(labels)} distinct candidates "
        f"({len(steps)} intermediate, {len(finals)} final, {len(labels) - len(usable)} empty or cut off); "
        f"checker says {sum(bool(x.checker) for x in steps)}/{len(steps)} intermediate steps are right"
    )
    bad = sum(not x.checker for x in steps)
    print(
        f"baseline: calling every intermediate step bad agrees with the checker on {_rate(bad, len(steps))}"
    )
    print(
        f"labeling: {cost.rollouts} rollouts, {cost.rollout_steps} rollout steps, {cost.rollout_tokens} tokens, "
        f"{wall:.1f} s ({cost.rollout_tokens / max(wall, 1e-9):.0f} rollout tokens/s)"
    )
    print(
        f"final steps: answer check = step checker on {_rate(sum(x.final_correct == x.checker for x in finals), len(finals))}"
    )
    # Steps after a prefix the checker passes in full: there the labels measure the step alone.
    clean_ids = {
        id(x)
        for x in steps
        if all(task.check_step(x.problem, list(x.previous[:k]), s) for k, s in enumerate(x.previous))
    }
    r = 1
    while r <= args.rollouts:
        _report(groups, r, args.seed, clean_ids)
        r *= 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
