"""Screen trainer settings in seconds: one training stage from a finished run's stored data.

    python benchmarks/trainer_probe.py RUN.duckdb [--iteration 2] [--algo ppo|step-dpo]
        [--reward process|outcome|both] [--lr 1e-5 3e-5] [--seeds 0 1 2] [--eval-problems 200]
        [--checker-pairs] [--sft-weight 0 1] [--epochs 1 4] [--beta 0.1 0.5]

Loads the run's M<k-1> checkpoint and the training data its iteration-k search stored (the
same rows the loop trains on), trains once per (lr, seed), and prints greedy accuracy on
the problems it trained on and on held-out problems, next to the untrained M<k-1> measured
in the same run. A rise on the training problems with a fall on held-out ones means the
trainer fits what it is rewarded for and that does not transfer; seeds show the noise.
Settings not given come from the run's own config; the default seed is the loop's own
(config seed + k), so the first row after the baseline reproduces the run's M<k>.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from presrm.errors import PresrmError
from presrm.model.adapters import prepare_for_training
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.store.reader import query_rows
from presrm.store.writer import read_identity
from presrm.tasks import load_task
from presrm.tasks.base import Problem, Task
from presrm.train.default_recipe import ensure_model


def accuracy(
    policy: Policy, task: Task, problems: list[Problem], max_steps: int, max_step_tokens: int
) -> float:
    """Greedy final-answer accuracy (%), decoded exactly as the loop's greedy eval does."""
    settings = SearchSettings(width=1, max_steps=max_steps, temperature=0.0, max_step_tokens=max_step_tokens)
    trees = search(policy, None, task, problems, settings, LocalIds())
    return 100.0 * sum(t.correct for t in trees) / max(1, len(trees))


def trained_problems(run: Path, iteration: int) -> list[Problem]:
    rows = query_rows(
        run,
        "SELECT DISTINCT problem_id, question, answer, reference_steps, source FROM problems "
        "WHERE split = 'train' AND iteration = ? ORDER BY problem_id",
        [iteration],
    )
    return [Problem(pid, q, a, tuple(steps or ()), src) for pid, q, a, steps, src in rows]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--iteration", type=int, default=2, help="train as the loop did for M<k> (default 2)")
    parser.add_argument("--algo", choices=["ppo", "step-dpo"])
    parser.add_argument("--reward", choices=["process", "outcome", "both"], help="PPO only")
    parser.add_argument(
        "--checker-pairs",
        action="store_true",
        help="step-DPO only: keep the pairs the step checker agrees with (ground-truth bound)",
    )
    parser.add_argument("--lr", type=float, nargs="+")
    parser.add_argument("--epochs", type=int, nargs="+", help="step-DPO only: passes over the pairs")
    parser.add_argument("--beta", type=float, nargs="+", help="step-DPO only: DPO beta")
    parser.add_argument("--seeds", type=int, nargs="+", help="training seeds (default: the loop's, seed + k)")
    parser.add_argument(
        "--sft-weight",
        type=float,
        nargs="+",
        help="step-DPO only: weight of the chosen steps' NLL added to the DPO loss (RPO; default: the run's)",
    )
    parser.add_argument(
        "--eval-problems", type=int, help="held-out problems (default: the run's eval_problems)"
    )
    args = parser.parse_args()

    from presrm.train.data import dpo_pairs_from_store, ppo_rollouts_from_store
    from presrm.train.dpo import train_step_dpo
    from presrm.train.ppo import StepPPOTrainer

    try:
        _, cfg = read_identity(args.run)
        k = args.iteration
        ckpt = args.run.with_suffix(".ckpt") / f"M{k - 1}"
        if k == 1 and not ckpt.is_dir():  # a run without a warm-up: M0 is the configured model
            ensure_model(cfg.model)
            start = load_policy(cfg.model, device=cfg.device, dtype=cfg.dtype, seed=cfg.seed)
        elif k < 1 or not ckpt.is_dir():
            raise PresrmError(
                f"{ckpt}: no checkpoint of M{k - 1} next to the run file (pick another --iteration)"
            )
        else:
            start = load_checkpoint(ckpt, device=cfg.device)
        task = load_task(cfg.task, cfg.task_options)
        base = prepare_for_training(
            start,
            cfg.train.finetune,
            seed=cfg.seed,
            lora_r=cfg.train.lora_r,
            lora_alpha=cfg.train.lora_alpha,
        )
        train_set = trained_problems(args.run, k)
        if not train_set:
            raise PresrmError(f"{args.run}: no training problems stored for iteration {k}")
    except PresrmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    held_out = task.sample(
        args.eval_problems if args.eval_problems is not None else cfg.eval_problems, "eval", seed=cfg.seed
    )
    algo, reward, t = args.algo or cfg.algo, args.reward or cfg.train.reward, cfg.train
    data: list = (
        ppo_rollouts_from_store(args.run, base, k, reward=reward)
        if algo == "ppo"
        else dpo_pairs_from_store(args.run, base, k, checker_agreed_only=args.checker_pairs)
    )

    def measure(policy: Policy) -> tuple[float, float]:
        return (
            accuracy(policy, task, train_set, cfg.max_steps, cfg.sampling.max_step_tokens),
            accuracy(policy, task, held_out, cfg.max_steps, cfg.sampling.max_step_tokens),
        )

    print(
        f"{args.run}: M{k - 1} -> M{k} by {algo}"
        + (f" ({reward} reward)" if algo == "ppo" else "")
        + f" on {len(data)} {'rollouts' if algo == 'ppo' else 'pairs'}"
        + (" (checker-agreed only)" if algo != "ppo" and args.checker_pairs else "")
        + ";"
        f" {len(train_set)} training problems, {len(held_out)} held-out"
    )
    print(f"{'setting':42s} {'train %':>8s} {'held-out %':>10s} {'seconds':>8s}")
    base_train, base_held = measure(base)
    print(f"{f'M{k - 1} (untrained)':42s} {base_train:8.1f} {base_held:10.1f} {'-':>8s}")
    dpo_only = algo != "ppo"
    for lr, sft_weight, epochs, beta in [
        (lr, w, e, b)
        for lr in args.lr or [t.ppo.lr if algo == "ppo" else t.dpo.lr]
        for w in ((args.sft_weight or [t.dpo.sft_weight]) if dpo_only else [0.0])
        for e in (args.epochs or [t.dpo.epochs] if dpo_only else [0])
        for b in (args.beta or [t.dpo.beta] if dpo_only else [0.0])
    ]:
        for seed in args.seeds or [cfg.seed + k]:
            policy = copy.deepcopy(base)
            start = time.perf_counter()
            if algo == "ppo":
                ppo = t.ppo.model_copy(update={"lr": lr})
                StepPPOTrainer(policy.model, policy.tokenizer, ppo, seed=seed).train(data)
            else:
                dpo = t.dpo.model_copy(
                    update={"lr": lr, "sft_weight": sft_weight, "epochs": epochs, "beta": beta}
                )
                train_step_dpo(policy, data, dpo, seed=seed)
            wall = time.perf_counter() - start
            tr, held = measure(policy)
            name = f"lr {lr:g}" + (f", sft {sft_weight:g}" if sft_weight else "")
            if dpo_only and (args.epochs or args.beta):
                name += f", {epochs} ep, beta {beta:g}"
            name += f", seed {seed}"
            print(f"{name:42s} {tr:8.1f} {held:10.1f} {wall:8.1f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
