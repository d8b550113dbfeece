"""A pointwise judge trained in the warm-up on the policy's own checker-labelled steps.

    python benchmarks/bench_own_step_judge.py --source paths|pairs|none [--updates 800] [--lr 3e-4]
        [--problems 1000] [--pairs 4000] [--eval 1000] [--save DIR] --out RESULT.json

Starts from the embedded default base and trains it ``--updates`` updates of 32: half gold replay of
the base's own phase-two mix, half pointwise judge examples (the prompt ``judge.mode = "pointwise"``
uses, answered Yes or No) from the policy's own steps, labelled by the task's step checker:

- ``paths``: every step of 4 sampled solutions (T = 0.8) of ``--problems`` 2-op and as many 3-op
  training problems, Yes and No balanced within each (difficulty, step number) stratum;
- ``pairs``: what ``warmup.eft_source = "sampled"`` gives the loop: ``--pairs`` pairs of sibling
  candidates (width 4, T = 0.8) of 3-op training problems that the checker splits, both steps of
  each pair as pointwise examples;
- ``none``: replay only, the same updates (the control: does more of the base's own data move it?).

Then, on ``--eval`` held-out 3-op problems: greedy accuracy; ``auroc_min`` of the greedy solutions
(their least step P(Yes) against final correctness) and how precise keeping those with least P(Yes)
≥ 0.5 / 0.7 is; step AUROC over 4 sampled solutions of the first 300; best-of-4 by least P(Yes)
against the oracle best-of-4; and step search (width 4, the greedy step first, another taken only
when it scores 0.5 above it) against greedy, paired.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import time
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from presrm.config import JudgeConfig
from presrm.intervals import paired_difference, wilson_interval
from presrm.judge_format import pointwise_user_text
from presrm.metrics import auroc
from presrm.model.checkpoints import save_checkpoint
from presrm.model.default import DEFAULT_RECIPE
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.search.judge import PointRequest
from presrm.search.judges import make_judge
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.tasks import load_task
from presrm.tasks.base import Problem, Task
from presrm.train.default_recipe import converge_examples, ensure_model, train_examples
from presrm.train.eft import pointwise_examples
from presrm.train.eft_rollouts import rollout_eft_pairs
from presrm.train.examples import SFTExample
from presrm.train.rollout_labels import RolloutSettings

OPTIONS = {"max_operand": 20, "ops": "+-"}
SAMPLES = 4
TEMPERATURE = 0.8


def _solutions(
    policy: Policy, task: Task, problems: list[Problem], k: int, temperature: float, seed: int
) -> list[Tree]:
    n_ops = task.n_ops  # type: ignore[attr-defined]
    out: list[Tree] = []
    for s in range(k):
        settings = SearchSettings(width=1, max_steps=n_ops + 4, temperature=temperature, seed=seed + s)
        out += search(policy, None, task, problems, settings, LocalIds())
    return out


def _path_examples(policy: Policy, trees: list[Tree], n: int, rng: random.Random) -> list[SFTExample]:
    """``n`` pointwise examples of solution steps, Yes/No balanced within each (difficulty, step)."""
    strata: dict[tuple[int, int], tuple[list[str], list[str]]] = collections.defaultdict(lambda: ([], []))
    for tree in trees:
        for k, node in enumerate(tree.path):
            if node.step_check is None:
                continue
            previous = [m.text for m in tree.path[:k]]
            prompt = policy.complete_prompt(pointwise_user_text(tree.problem.question, previous, node.text))
            strata[(tree.problem.question.count(", then"), k)][0 if node.step_check else 1].append(prompt)
    both = [key for key, (yes, no) in strata.items() if yes and no]
    out = []
    for _ in range(n):
        yes, no = strata[rng.choice(both)]
        out.append(
            SFTExample(rng.choice(yes), "Yes") if rng.random() < 0.5 else SFTExample(rng.choice(no), "No")
        )
    return out


def _least_p_yes(policy: Policy, task: Task, trees: list[Tree]) -> tuple[list[list[float]], list[float]]:
    judge = make_judge(policy, JudgeConfig(mode="pointwise"), task, max_step_tokens=48)
    requests, owner = [], []
    for i, tree in enumerate(trees):
        for k, node in enumerate(tree.path):
            requests.append(
                PointRequest(tree.problem.question, tuple(n.text for n in tree.path[:k]), node.text)
            )
            owner.append(i)
    per_step: list[list[float]] = [[] for _ in trees]
    for i, result in zip(owner, judge.verdicts.pointwise(requests), strict=True):
        per_step[i].append(float(result.p_a or 0.0))
    return per_step, [min(s) if s else 0.0 for s in per_step]


def _train(policy: Policy, args: argparse.Namespace, info: dict[str, object], log) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(0)
    n_judge = args.updates * 32 // 2
    easy, hard = load_task("arith", {**OPTIONS, "n_ops": 2}), load_task("arith", {**OPTIONS, "n_ops": 3})
    judge_examples: list[SFTExample] = []
    if args.source == "paths":
        trees = _solutions(
            policy, easy, easy.sample(args.problems, "train", seed=99), SAMPLES, TEMPERATURE, 1000
        )
        trees += _solutions(
            policy, hard, hard.sample(args.problems, "train", seed=98), SAMPLES, TEMPERATURE, 2000
        )
        checked = [n.step_check for t in trees for n in t.path if n.step_check is not None]
        info.update(steps=len(checked), wrong_steps=checked.count(False))
        judge_examples = _path_examples(policy, trees, n_judge, rng)
    elif args.source == "pairs":
        settings = RolloutSettings(width=4, temperature=TEMPERATURE, max_steps=7, seed=5)
        problems = hard.sample(4 * args.pairs, "train", seed=98)
        pairs, _ = rollout_eft_pairs(
            policy, hard, problems, settings, rng, args.pairs, label="checker", batch=64
        )
        info["pairs"] = len(pairs)
        distinct = pointwise_examples(policy, pairs)
        judge_examples = [rng.choice(distinct) for _ in range(n_judge)]
    log(f"judge examples {len(judge_examples)} ({info.get('steps', info.get('pairs', 0))} steps/pairs)")
    replay = converge_examples(
        policy, replace(DEFAULT_RECIPE, converge_steps=1, data_seed=DEFAULT_RECIPE.data_seed + 50)
    )
    examples = judge_examples + rng.sample(replay, min(len(replay), n_judge))
    rng.shuffle(examples)
    train_examples(policy, examples, steps=args.updates, batch_size=32, lr=args.lr, seed=0)


def run(args: argparse.Namespace) -> dict[str, object]:
    started = time.time()

    def log(message: str) -> None:
        print(f"[{time.time() - started:5.0f}s] {message}", flush=True)

    ensure_model("default")
    policy = load_policy("default", device="cpu")
    info: dict[str, object] = {"source": args.source, "updates": args.updates, "lr": args.lr}
    if args.updates:
        _train(policy, args, info, log)
        if args.save:
            save_checkpoint(policy, args.save)
    hard = load_task("arith", {**OPTIONS, "n_ops": 3})
    problems = hard.sample(args.eval, "eval", seed=12345)
    greedy_trees = _solutions(policy, hard, problems, 1, 0.0, 0)
    greedy = [bool(t.correct) for t in greedy_trees]
    _, least = _least_p_yes(policy, hard, greedy_trees)
    acc = wilson_interval(sum(greedy), len(greedy))
    assert acc is not None
    log(
        f"greedy 3-op {100 * sum(greedy) / len(greedy):.1f} [{100 * acc.low:.1f}, {100 * acc.high:.1f}]  auroc_min {auroc(least, greedy):.3f}"
    )
    for tau in (0.5, 0.7):
        kept = [c for c, m in zip(greedy, least, strict=True) if m >= tau]
        log(
            f"  keep least P(Yes) >= {tau}: {len(kept)}/{len(greedy)}, {100 * sum(kept) / max(1, len(kept)):.1f} % right"
        )
    n_hot = min(300, len(problems))
    hot = _solutions(policy, hard, problems[:n_hot], SAMPLES, TEMPERATURE, 5000)
    steps, hot_least = _least_p_yes(policy, hard, hot)
    scores = [
        s
        for t, ss in zip(hot, steps, strict=True)
        for n, s in zip(t.path, ss, strict=True)
        if n.step_check is not None
    ]
    labels = [bool(n.step_check) for t in hot for n in t.path if n.step_check is not None]
    log(
        f"step AUROC (4 samples of {n_hot}) {auroc(scores, labels):.3f} (n = {len(labels)}, {labels.count(False)} wrong)"
    )
    best = oracle = 0
    for i in range(n_hot):
        group = [(hot_least[r * n_hot + i], bool(hot[r * n_hot + i].correct)) for r in range(SAMPLES)]
        best += max(group)[1]
        oracle += any(c for _, c in group)
    log(
        f"best-of-4 by least P(Yes) {100 * best / n_hot:.1f}, oracle {100 * oracle / n_hot:.1f}, greedy {100 * sum(greedy[:n_hot]) / n_hot:.1f}"
    )
    settings = SearchSettings(
        width=4, max_steps=7, temperature=TEMPERATURE, seed=77, greedy_candidate=True, switch_margin=0.5
    )
    judge = make_judge(policy, JudgeConfig(mode="pointwise"), hard, max_step_tokens=48)
    searched = [bool(t.correct) for t in search(policy, judge, hard, problems, settings, LocalIds())]
    diff = paired_difference(searched, greedy)
    assert diff is not None
    log(
        f"search vs greedy {100 * sum(searched) / len(searched):.1f} vs {100 * sum(greedy) / len(greedy):.1f}: {100 * diff.estimate:+.1f} [{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]"
    )
    info.update(greedy=greedy, least=least, searched=searched, seconds=round(time.time() - started))
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("paths", "pairs", "none"), required=True)
    parser.add_argument("--updates", type=int, default=800)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--problems", type=int, default=1000, help="paths: training problems per difficulty")
    parser.add_argument("--pairs", type=int, default=4000, help="pairs: sibling pairs wanted")
    parser.add_argument("--eval", type=int, default=1000, help="held-out 3-op problems")
    parser.add_argument("--save", help="save the trained model here (a presrm checkpoint)")
    parser.add_argument("--out", required=True, help="per-problem outcomes (JSON)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with open(args.out, "w") as f:
        json.dump(run(args), f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
