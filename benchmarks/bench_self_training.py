"""Label-free self-training on unlabelled harder problems against a replay-only control and an oracle.

    python benchmarks/bench_self_training.py --arm none|control|self|judged|graded|searched|oracle [--checkpoint DIR]
        [--n-ops 3] [--seed 0] [--updates 300] [--lr 1e-4] [--train-problems 800]
        [--samples 4] [--threshold 0.5] --out ARM.json
    python benchmarks/bench_self_training.py --compare none.json control.json self.json oracle.json

One arm per call (each takes minutes on one core; run arms side by side). Every arm starts from the
same model (default: the embedded default base) and is evaluated greedily on the same held-out
problems (1,000 of the target difficulty, 300 2-op as a regression check):

- ``none``: the model as it is (M1);
- ``control``: ``--updates`` more updates on the base's own phase-two mix (gold 2-op solutions with its
  share of harder ones): does more of the warm-up data move it? (M1 converged when it does not);
- ``self``: the same updates with the model's own solutions of ``--train-problems`` unlabelled target
  problems added, kept when at least 4 of 5 greedy solutions (the question and 4 rewrites) give the same
  final answer (LMSI-style self-consistency over paraphrases; no labels);
- ``judged``: the same updates with the model's own solutions kept by its own pointwise judge (the
  prompt ``judge.mode = "pointwise"`` uses): of the greedy solution and ``--samples`` sampled ones
  (T = 0.8) the one whose least P(Yes) over its steps is highest, kept when that is at least
  ``--threshold`` (for a model whose warm-up trained that judge, e.g. on ``warmup.eft_source =
  "sampled"`` pairs; no labels);
- ``graded``: the same updates with, of each problem's 5 greedy solutions under the question and its
  rewrites, the one whose least step probability averaged over those wordings (the paraphrase judge's
  graded score, its ``soft_score``) is highest, kept when that is at least ``--threshold`` (no labels);
- ``searched``: the same updates with the solutions the self-judged step search accepts on the
  ``--train-problems`` problems (the paraphrase vote, the greedy step kept unless another wins more
  votes, width 6, T = 0.5: ``examples/easy-to-hard.toml``'s search), every finished one kept — the
  search's gain over greedy decoding distilled back into the policy (expert iteration; no labels);
- ``oracle``: the same, but keeping a solution the task's checker calls right (an upper bound for the
  same candidate pool as ``self``).

``--compare`` prints each arm's accuracy (Wilson 95 %) and its paired difference to the first file's
arm on the same problems.
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
from presrm.eval.verifier_gap import Solution
from presrm.intervals import paired_difference, wilson_interval
from presrm.model.default import DEFAULT_RECIPE
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.search.judge import PointRequest
from presrm.search.judges import make_judge
from presrm.search.modes.paraphrase import ParaphraseMode
from presrm.search.paraphrase import ParaphraseJudge
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.tasks import load_task
from presrm.tasks.base import Problem, Task
from presrm.train.default_recipe import converge_examples, ensure_model, train_examples
from presrm.train.eft import solution_text
from presrm.train.examples import SFTExample

REWRITES = 4
MIN_VOTES = 4  # of REWRITES + 1 answers


def _greedy(policy: Policy, task: Task, problems: list[Problem], n_ops: int) -> list[Tree]:
    settings = SearchSettings(width=1, max_steps=n_ops + 4, temperature=0.0, seed=0)
    return search(policy, None, task, problems, settings, LocalIds())


def _example(policy: Policy, problem: Problem, tree: Tree) -> SFTExample:
    """A solution the model wrote (its chosen path) as an SFT example for ``problem``'s question."""
    steps = [node.text.split(":", 1)[1].strip() for node in tree.path]
    return SFTExample(
        policy.solution_prompt(problem.question), solution_text(steps, policy.step_format), eos=True
    )


def _wording_pool(policy: Policy, task: Task, n: int, n_ops: int) -> list[tuple[Problem, list[Tree]]]:
    """``n`` unlabelled target problems, each with its greedy solutions under the question and its
    rewrites (the same numbers and operations, so each is a solution of the question too)."""
    problems = task.sample(n, "train", seed=777)
    variants = [
        [p] + [replace(p, question=q) for q in task.rewrite_question(p.question, REWRITES, seed=0)]
        for p in problems
    ]
    trees = _greedy(policy, task, [v for vs in variants for v in vs], n_ops)
    pool = []
    at = 0
    for problem, vs in zip(problems, variants, strict=True):
        pool.append((problem, trees[at : at + len(vs)]))
        at += len(vs)
    return pool


def _kept_solutions(policy: Policy, task: Task, arm: str, n: int, n_ops: int) -> tuple[list[SFTExample], int]:
    """The arm's training solutions of ``n`` unlabelled target problems, and how many are right."""
    kept: list[SFTExample] = []
    right = 0
    for problem, group in _wording_pool(policy, task, n, n_ops):
        answers = [t.final.final_answer if t.final else None for t in group]
        if arm == "self":
            votes = collections.Counter(a for a in answers if a is not None)
            if not votes or votes.most_common(1)[0][1] < MIN_VOTES:
                continue
            pick = group[answers.index(votes.most_common(1)[0][0])]
        else:  # oracle
            correct = [t for t in group if t.correct]
            if not correct:
                continue
            pick = correct[0]
        kept.append(_example(policy, problem, pick))
        right += pick.correct
    return kept, right


def _graded_solutions(
    policy: Policy, task: Task, n: int, n_ops: int, threshold: float
) -> tuple[list[SFTExample], int]:
    """Of each problem's greedy solutions under the question and its rewrites, the one whose least
    step probability, averaged over the wordings (the paraphrase judge's graded score), is highest;
    kept when that reaches ``threshold``. No labels. Also prints the precision at other thresholds."""
    judge = ParaphraseMode(ParaphraseJudge(policy, task, paraphrases=REWRITES, seed=0, max_step_tokens=48))
    picks = []
    for problem, group in _wording_pool(policy, task, n, n_ops):
        finished = [t for t in group if t.final is not None]
        if finished:
            scores = judge.graded_solution_scores(problem.question, [Solution.of(t) for t in finished])
            best = max(range(len(finished)), key=lambda j: (scores[j], -j))  # ties: the question's own first
            picks.append((scores[best], problem, finished[best]))
    for t in (0.3, 0.4, 0.5, 0.6, 0.7):
        chosen = [tree for score, _, tree in picks if score >= t]
        print(f"graded >= {t}: keeps {len(chosen)}, right {sum(bool(x.correct) for x in chosen)}")
    kept = [(problem, tree) for score, problem, tree in picks if score >= threshold]
    return [_example(policy, p, t) for p, t in kept], sum(bool(t.correct) for _, t in kept)


def _searched_solutions(policy: Policy, task: Task, n: int, n_ops: int) -> tuple[list[SFTExample], int]:
    """The self-judged search's accepted solutions of ``n`` unlabelled target problems (all finished
    ones), and how many are right."""
    problems = task.sample(n, "train", seed=777)
    judge = make_judge(policy, JudgeConfig(mode="paraphrase", paraphrases=REWRITES), task, max_step_tokens=48)
    settings = SearchSettings(
        width=6, max_steps=n_ops + 4, temperature=0.5, seed=0, greedy_candidate=True, switch_margin=0.0
    )
    trees = search(policy, judge, task, problems, settings, LocalIds())
    kept: list[SFTExample] = []
    right = 0
    for problem, tree in zip(problems, trees, strict=True):
        if tree.final is None:
            continue
        kept.append(_example(policy, problem, tree))
        right += tree.correct
    return kept, right


def _least_p_yes(policy: Policy, task: Task, trees: list[Tree]) -> list[float]:
    """Per solution, the lowest P(Yes) the policy's pointwise judge gives one of its steps."""
    judge = make_judge(policy, JudgeConfig(mode="pointwise"), task, max_step_tokens=48)
    requests, owner = [], []
    for i, tree in enumerate(trees):
        for k, node in enumerate(tree.path):
            requests.append(
                PointRequest(tree.problem.question, tuple(n.text for n in tree.path[:k]), node.text)
            )
            owner.append(i)
    least = [1.0 if t.path else 0.0 for t in trees]
    for i, result in zip(owner, judge.verdicts.pointwise(requests), strict=True):
        least[i] = min(least[i], float(result.p_a or 0.0))
    return least


def _judged_solutions(
    policy: Policy, task: Task, n: int, n_ops: int, samples: int, threshold: float
) -> tuple[list[SFTExample], int]:
    """Of the greedy and ``samples`` sampled solutions of each of ``n`` unlabelled target problems,
    the one the policy's own pointwise judge trusts most, kept when its least step P(Yes) reaches
    ``threshold``; and how many of the kept are right."""
    problems = task.sample(n, "train", seed=777)
    runs = [_greedy(policy, task, problems, n_ops)]
    for s in range(samples):
        settings = SearchSettings(width=1, max_steps=n_ops + 4, temperature=0.8, seed=100 + s)
        runs.append(search(policy, None, task, problems, settings, LocalIds()))
    scores = [_least_p_yes(policy, task, trees) for trees in runs]
    kept: list[SFTExample] = []
    right = 0
    for i, problem in enumerate(problems):
        score, pick = max(((scores[r][i], runs[r][i]) for r in range(len(runs))), key=lambda x: x[0])
        if score < threshold or pick.final is None:
            continue
        kept.append(_example(policy, problem, pick))
        right += bool(pick.correct)
    return kept, right


def run_arm(args: argparse.Namespace) -> dict[str, object]:
    started = time.time()
    if args.checkpoint:
        policy = load_checkpoint(args.checkpoint, device="cpu")
    else:
        ensure_model("default")
        policy = load_policy("default", device="cpu")
    opts = {"max_operand": 20, "ops": "+-"}
    target = load_task("arith", {**opts, "n_ops": args.n_ops})
    easy = load_task("arith", {**opts, "n_ops": 2})
    info: dict[str, object] = {"arm": args.arm, "seed": args.seed, "updates": args.updates, "lr": args.lr}
    if args.arm != "none":
        mix = replace(
            DEFAULT_RECIPE, converge_steps=1, data_seed=DEFAULT_RECIPE.data_seed + 100 * (args.seed + 1)
        )
        replay = converge_examples(policy, mix)
        kept: list[SFTExample] = []
        if args.arm in ("self", "oracle"):
            kept, right = _kept_solutions(policy, target, args.arm, args.train_problems, args.n_ops)
            info.update(kept=len(kept), kept_right=right, train_problems=args.train_problems)
        elif args.arm == "searched":
            kept, right = _searched_solutions(policy, target, args.train_problems, args.n_ops)
            info.update(kept=len(kept), kept_right=right, train_problems=args.train_problems)
        elif args.arm == "graded":
            kept, right = _graded_solutions(policy, target, args.train_problems, args.n_ops, args.threshold)
            info.update(kept=len(kept), kept_right=right, train_problems=args.train_problems)
            info.update(threshold=args.threshold)
        elif args.arm == "judged":
            kept, right = _judged_solutions(
                policy, target, args.train_problems, args.n_ops, args.samples, args.threshold
            )
            info.update(kept=len(kept), kept_right=right, train_problems=args.train_problems)
            info.update(samples=args.samples, threshold=args.threshold)
        rng = random.Random(args.seed)
        n_replay = max(3 * len(kept), 32 * args.updates // 2)
        examples = kept + rng.sample(replay, min(n_replay, len(replay)))
        train_examples(policy, examples, steps=args.updates, batch_size=32, lr=args.lr, seed=args.seed)
    held_out = _greedy(policy, target, target.sample(1000, "eval", seed=12345), args.n_ops)
    regression = _greedy(policy, easy, easy.sample(300, "eval", seed=12345), 2)
    info["target"] = [int(t.correct) for t in held_out]
    info["easy"] = [int(t.correct) for t in regression]
    info["seconds"] = round(time.time() - started)
    return info


def compare(paths: list[str]) -> None:
    runs = []
    for p in paths:
        with open(p) as f:
            runs.append(json.load(f))
    base = runs[0]
    for path, run in zip(paths, runs, strict=True):
        for key in ("target", "easy"):
            outcomes = [bool(x) for x in run[key]]
            acc = wilson_interval(sum(outcomes), len(outcomes))
            diff = paired_difference(outcomes, [bool(x) for x in base[key]])
            assert acc is not None and diff is not None
            kept = f"  kept {run['kept']} ({run['kept_right']} right)" if "kept" in run else ""
            print(
                f"{run['arm']:8s} {key:6s} {100 * sum(outcomes) / len(outcomes):5.1f} "
                f"[{100 * acc.low:.1f}, {100 * acc.high:.1f}]  − {base['arm']}: {100 * diff.estimate:+.1f} "
                f"[{100 * diff.low:+.1f}, {100 * diff.high:+.1f}]{kept}  ({path})"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--arm", choices=("none", "control", "self", "judged", "graded", "searched", "oracle")
    )
    parser.add_argument("--checkpoint", help="a presrm checkpoint directory instead of the default base")
    parser.add_argument("--n-ops", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--updates", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--train-problems", type=int, default=800)
    parser.add_argument("--samples", type=int, default=4, help="judged: sampled solutions per problem")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="judged / graded: least step score to keep"
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="where the arm's per-problem outcomes go (JSON)")
    parser.add_argument("--compare", nargs="+", metavar="ARM.json")
    args = parser.parse_args()
    if args.compare:
        compare(args.compare)
        return 0
    if not args.arm or not args.out:
        parser.error("--arm and --out are required (or --compare FILES)")
    torch.set_num_threads(args.threads)
    info = run_arm(args)
    with open(args.out, "w") as f:
        json.dump(info, f)
    compare([args.out])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
