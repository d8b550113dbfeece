"""Measure the embedded default model against its criteria, in one command.

    python benchmarks/measure_default.py                 # cached base (built if missing)
    python benchmarks/measure_default.py --rebuild       # time a fresh build of the base too
    python benchmarks/measure_default.py --search        # also time one self-rewarding search round

Criteria (after the IFT + EFT warm-up, default arith difficulty):
  accuracy (held-out eval problems, greedy step-by-step decoding through presrm.search.tree_search)
      between 30% and 80%;
  judge accuracy (held-out EFT pairs from eval-split problems, judged in BOTH orders by
      ModelJudge from the text it generates; an inconsistent or unparseable pair is wrong)
      at least 80%;
  warm-up wall time at most 10 minutes on this machine.

M0 (the cached base) and M1 (after the warm-up) are both measured. The warm-up is the
loop's own (``presrm.run.loop.Loop._stage_warmup``): the same data builders and
``presrm.train.sft.train_sft`` with the run config's warm-up settings — the values
recommended in ``presrm.model.default.RECOMMENDED_CONFIG`` unless ``--set`` overrides them.

The machine's speed swings (other processes share its cores): wall and CPU seconds are
both printed, and the load average before and after.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from presrm.config import RunConfig, apply_overrides, validate_config
from presrm.model.adapters import prepare_for_training
from presrm.model.default import DEFAULT_RECIPE, RECOMMENDED_CONFIG, default_dir
from presrm.model.policy import Policy
from presrm.search.judge import ModelJudge, PairRequest
from presrm.search.judges import make_judge
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.tasks import load_task
from presrm.tasks.base import Task
from presrm.train.default_recipe import load_default
from presrm.train.eft import build_eft_pairs, eft_examples, ift_examples
from presrm.train.examples import JudgePair
from presrm.train.sft import train_sft


@dataclass
class Timing:
    wall: float = 0.0
    cpu: float = 0.0


@contextmanager
def timed() -> Iterator[Timing]:
    t = Timing()
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        yield t
    finally:
        t.wall, t.cpu = time.perf_counter() - w0, time.process_time() - c0


@dataclass
class Scores:
    model: str
    accuracy: float = 0.0
    judge_accuracy: float = 0.0
    judge_order0: float = 0.0
    judge_parsed: float = 0.0
    times: dict[str, Timing] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)


def greedy_accuracy(
    policy: Policy, task: Task, problems: list[Any], cfg: RunConfig
) -> tuple[float, list[Tree]]:
    """What the loop's greedy eval does: width 1, temperature 0, the run's step limits."""
    settings = SearchSettings(
        width=1,
        max_steps=cfg.max_steps,
        temperature=0.0,
        top_p=1.0,
        max_step_tokens=cfg.sampling.max_step_tokens,
        seed=0,
    )
    trees = search(policy, None, task, problems, settings, LocalIds())
    return sum(t.correct for t in trees) / max(1, len(trees)), trees


def judge_accuracy(
    policy: Policy, pairs: list[JudgePair], cfg: RunConfig
) -> tuple[float, float, float, list[str]]:
    """Both orders; right only when both verdicts (parsed from generated text) are right."""
    judge = ModelJudge(policy, cfg.judge)
    requests = []
    for p in pairs:
        requests.append(PairRequest(p.question, p.previous_steps, p.step_a, p.step_b))
        requests.append(PairRequest(p.question, p.previous_steps, p.step_b, p.step_a))
    results = judge.pairwise(requests)
    both = order0 = parsed = 0
    for i, p in enumerate(pairs):
        r0, r1 = results[2 * i], results[2 * i + 1]
        swapped = "B" if p.verdict == "A" else "A"
        both += r0.verdict == p.verdict and r1.verdict == swapped
        order0 += r0.verdict == p.verdict
        parsed += (r0.verdict is not None) + (r1.verdict is not None)
    n = max(1, len(pairs))
    shown = [
        f"{pairs[i].step_a} | {pairs[i].step_b} -> {results[2 * i].raw_output!r}"
        for i in range(min(3, len(pairs)))
    ]
    return both / n, order0 / n, parsed / (2 * n), shown


def warmup(
    policy: Policy, task: Task, cfg: RunConfig, log: Callable[[str], None], check_form: str = "compare"
) -> int:
    """The loop's warm-up stage (presrm.run.loop.Loop._stage_warmup), without the run file."""
    w = cfg.warmup
    policy = prepare_for_training(policy, cfg.train.finetune)
    rng = random.Random(f"{cfg.seed}:warmup")
    problems = task.sample(max(w.ift_examples, 1), "train", seed=cfg.seed + 10_000)
    examples = ift_examples(policy, task, problems[: w.ift_examples])
    pairs = build_eft_pairs(task, problems, rng, w.eft_examples) if w.eft_examples else []
    examples += eft_examples(policy, pairs, with_check=cfg.judge.check, check_form=check_form)
    rng.shuffle(examples)
    last = [0.0]

    def every(step: int, metrics: dict[str, float]) -> None:
        if "loss" in metrics and time.perf_counter() - last[0] > 30:
            last[0] = time.perf_counter()
            log(f"  warm-up step {step}: loss {metrics['loss']:.3f}")

    records = train_sft(policy, examples, w, seed=cfg.seed, log=every)
    return len(records)


def measure(
    policy: Policy, name: str, task: Task, cfg: RunConfig, problems: list[Any], pairs: list[JudgePair]
) -> Scores:
    s = Scores(name)
    with timed() as t:
        s.accuracy, trees = greedy_accuracy(policy, task, problems, cfg)
    s.times["greedy eval"] = t
    s.examples = [" / ".join(n.text for n in tr.path) for tr in trees[:2]]
    with timed() as t:
        s.judge_accuracy, s.judge_order0, s.judge_parsed, shown = judge_accuracy(policy, pairs, cfg)
    s.times["judge eval"] = t
    s.examples += shown
    return s


def search_round(policy: Policy, task: Task, cfg: RunConfig) -> dict[str, Any]:
    """One self-rewarding search stage: cfg.problems train problems, width cfg.width."""
    problems = task.sample(cfg.problems, "train", seed=cfg.seed * 1000 + 2)
    settings = SearchSettings(
        width=cfg.width,
        max_steps=cfg.max_steps,
        temperature=cfg.sampling.temperature,
        top_p=cfg.sampling.top_p,
        max_step_tokens=cfg.sampling.max_step_tokens,
        seed=cfg.seed * 7919 + 2,
    )
    judge = make_judge(policy, cfg.judge, task, max_step_tokens=cfg.sampling.max_step_tokens, seed=cfg.seed)
    trees: list[Tree] = []
    with timed() as t:
        for start in range(0, len(problems), cfg.batch_problems):
            trees += search(
                policy, judge, task, problems[start : start + cfg.batch_problems], settings, LocalIds()
            )
    pairs = sum(n.rejected for tr in trees for n in tr.nodes if not n.rolled_back)  # one per kept pair
    judged = [j for tr in trees for j in tr.judgments if j.expected is not None]
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "accuracy": sum(tr.correct for tr in trees) / len(trees),
        "pairs": pairs,
        "judgments": sum(len(tr.judgments) for tr in trees),
        "judge_calls_right": (sum(j.verdict == j.expected for j in judged) / len(judged))
        if judged
        else float("nan"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rebuild", action="store_true", help="build the base in a fresh cache dir and time it")
    ap.add_argument("--eval-problems", type=int, default=200)
    ap.add_argument("--judge-pairs", type=int, default=200)
    ap.add_argument("--search", action="store_true", help="also time one self-rewarding search round (M1)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="run config override")
    ap.add_argument("--json", help="also write the numbers to this JSON file")
    args = ap.parse_args(argv)

    cfg = validate_config(apply_overrides(copy.deepcopy(RECOMMENDED_CONFIG), args.set))
    task = load_task(cfg.task, cfg.task_options)
    load_before = os.getloadavg()
    log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731

    build = Timing()
    if args.rebuild:
        os.environ["PRESRM_CACHE"] = tempfile.mkdtemp(prefix="presrm-default-")
    with timed() as t:
        policy = load_default(device="cpu", dtype="float32", progress=log)
    build = t
    log(
        f"base model {default_dir(DEFAULT_RECIPE)}: {policy.num_parameters():,} parameters, "
        f"loaded/built in {t.wall:.1f}s"
    )

    problems = task.sample(args.eval_problems, "eval", seed=cfg.seed)
    pair_problems = task.sample(args.judge_pairs, "eval", seed=cfg.seed)
    pairs = build_eft_pairs(task, pair_problems, random.Random(f"{cfg.seed}:eft_test"), args.judge_pairs)

    m0 = measure(policy, "M0 (base)", task, cfg, problems, pairs)
    m0.times["build/load"] = build
    log(f"M0: accuracy {m0.accuracy:.3f}, judge {m0.judge_accuracy:.3f}")
    with timed() as t:
        updates = warmup(policy, task, cfg, log)
    m1 = measure(policy, "M1 (warm-up)", task, cfg, problems, pairs)
    m1.times["warm-up"] = t
    log(f"M1: accuracy {m1.accuracy:.3f}, judge {m1.judge_accuracy:.3f}")
    search_stats = search_round(policy, task, cfg) if args.search else None
    load_after = os.getloadavg()

    print(
        f"\nconfig: task {cfg.task} {json.dumps(cfg.task_options)}, warm-up {cfg.warmup.ift_examples} IFT + "
        f"{cfg.warmup.eft_examples} EFT, lr {cfg.warmup.lr}, epochs {cfg.warmup.epochs}, batch "
        f"{cfg.warmup.batch_size} ({updates} updates); {len(problems)} eval problems, {len(pairs)} judge pairs"
    )
    print(
        f"base: {policy.num_parameters():,} params, recipe {DEFAULT_RECIPE.key()}; load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after (2 cores here)\n"
    )
    print("| model | greedy accuracy | judge accuracy (both orders) | order-0 only | parsed | time |")
    print("|---|---|---|---|---|---|")
    for s in (m0, m1):
        times = ", ".join(f"{k} {v.wall:.0f}s wall / {v.cpu:.0f}s cpu" for k, v in s.times.items())
        print(
            f"| {s.model} | {s.accuracy:.1%} | {s.judge_accuracy:.1%} | {s.judge_order0:.1%} | "
            f"{s.judge_parsed:.1%} | {times} |"
        )
    warm = m1.times["warm-up"].wall
    print(
        "\ncriteria: accuracy 30-80% "
        + ("PASS" if 0.30 <= m1.accuracy <= 0.80 else "FAIL")
        + f"; judge >= 80% {'PASS' if m1.judge_accuracy >= 0.80 else 'FAIL'}"
        + f"; warm-up <= 600 s {'PASS' if warm <= 600 else 'FAIL'} ({warm:.0f}s)"
    )
    if search_stats:
        print(
            f"search round (M1, {cfg.problems} problems, width {cfg.width}): {search_stats['wall']:.0f}s wall, "
            f"accuracy {search_stats['accuracy']:.1%}, {search_stats['pairs']} step pairs, "
            f"{search_stats['judgments']} judge calls ({search_stats['judge_calls_right']:.1%} right where "
            "the step checker knows)"
        )
    for s in (m0, m1):
        print(f"\n{s.model} examples:")
        for e in s.examples:
            print("  " + e)
    if args.json:
        out = {
            "m0": _as_dict(m0),
            "m1": _as_dict(m1),
            "search": search_stats,
            "load": [load_before, load_after],
            "recipe": DEFAULT_RECIPE.key(),
            "config": json.loads(cfg.to_json()),
        }
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


def _as_dict(s: Scores) -> dict[str, Any]:
    return {
        "accuracy": s.accuracy,
        "judge_accuracy": s.judge_accuracy,
        "judge_order0": s.judge_order0,
        "judge_parsed": s.judge_parsed,
        "times": {k: [v.wall, v.cpu] for k, v in s.times.items()},
    }


if __name__ == "__main__":
    raise SystemExit(main())
