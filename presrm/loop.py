"""The self-rewarding loop: M0 → warm-up → M1 → (search → train → eval) → M2 → …

Stages, in order (iteration k produces model M_k):

    0: eval                      M0 as loaded
    1: warmup, eval              IFT + EFT supervised warm-up (if enabled)
    k: search, train, eval       self-judged trees of M_{k-1} → train (PPO | step-DPO) → M_k

Each stage's rows commit together with its ``stages`` row (RunStore.flush), so the
run file always says exactly which stages are finished. ``--resume`` loads the
model of the last finished training stage, deletes the rows a killed stage left
behind, and redoes that stage: nothing is done twice, nothing lost. Training data
is always read back from the run file, so a resumed train stage sees exactly the
trees the search stored.
"""

from __future__ import annotations

import contextlib
import random
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from transformers.utils import logging as hf_logging

from presrm.config import JudgeConfig, RunConfig
from presrm.errors import Interrupted
from presrm.judge import ModelJudge, StepJudge
from presrm.models import Policy, load_checkpoint, load_policy, prepare_for_training, save_checkpoint
from presrm.search import SearchSettings, Tree, judgment_columns, node_columns, search
from presrm.store import RunStore, StageDone
from presrm.tasks import Problem, Task, load_task
from presrm.training_data import dpo_pairs_from_store, ppo_rollouts_from_store

console = Console(stderr=True)
# The loop draws its own progress bars; transformers' per-load/per-save bars would interleave.
hf_logging.disable_progress_bar()
hf_logging.set_verbosity_error()
JudgeFactory = Callable[[Policy, JudgeConfig], StepJudge]

# Rows each stage owns, deleted before a stage that never committed is redone.
STAGE_ROWS: dict[str, list[tuple[str, str]]] = {
    "warmup": [("train_steps", "iteration = ? AND stage = 'warmup'"), ("iterations", "iteration = ?")],
    "search": [
        ("nodes", "iteration = ? AND phase = 'train'"),
        ("judgments", "iteration = ? AND phase = 'train'"),
        ("problems", "iteration = ? AND split = 'train'"),
    ],
    "train": [("train_steps", "iteration = ? AND stage <> 'warmup'"), ("iterations", "iteration = ?")],
    "eval": [
        ("nodes", "iteration = ? AND phase IN ('eval', 'greedy', 'eft_test')"),
        ("judgments", "iteration = ? AND phase IN ('eval', 'eft_test')"),
        ("evals", "iteration = ?"),
        ("eval_metrics", "iteration = ?"),
        ("problems", "iteration = ? AND split = 'eval'"),
    ],
}


@dataclass(frozen=True)
class Stage:
    iteration: int
    name: str


def plan(cfg: RunConfig) -> list[Stage]:
    """Every stage of a run, in order."""
    stages = [Stage(0, "eval")]
    first = 1
    if cfg.warmup.enabled:
        stages += [Stage(1, "warmup"), Stage(1, "eval")]
        first = 2
    for k in range(first, first + cfg.iterations):
        stages += [Stage(k, "search"), Stage(k, "train"), Stage(k, "eval")]
    return stages


def checkpoint_dir(store: RunStore, iteration: int) -> Path:
    """Checkpoints live next to the run file: RUN.duckdb → RUN.ckpt/M<k>/."""
    return store.path.with_suffix(".ckpt") / f"M{iteration}"


class _StopFlag:
    """SIGINT sets a flag; the loop stops at the next safe point (between batches)."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.requested:  # a second Ctrl-C stops at once
                raise KeyboardInterrupt
            self.requested = True
            console.print("[yellow]stopping at the next safe point (Ctrl-C again to abort now)[/yellow]")

        try:
            previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave signals alone
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class Loop:
    """Runs the stages of one run file."""

    def __init__(self, store: RunStore, *, judge_factory: JudgeFactory | None = None) -> None:
        self.store = store
        # Tests pass a fixed verdict source here; runs use the policy itself as judge.
        self.judge_factory: JudgeFactory = judge_factory or (lambda policy, cfg: ModelJudge(policy, cfg))
        self.cfg = store.config
        self.task: Task = load_task(self.cfg.task, self.cfg.task_options)
        self.stop = _StopFlag()
        self.policy: Policy | None = None
        self.model_iteration = -1
        self.timings: dict[str, float] = {}

    # ---- model chain ------------------------------------------------------------------------
    def _ensure_model(self, iteration: int) -> Policy:
        """The model M_iteration (loaded from its checkpoint when not in memory)."""
        if self.policy is not None and self.model_iteration == iteration:
            return self.policy
        if iteration == 0:
            policy = load_policy(self.cfg.model, device=self.cfg.device, seed=self.cfg.seed)
        else:
            policy = load_checkpoint(checkpoint_dir(self.store, iteration), device=self.cfg.device)
        self.policy = prepare_for_training(policy, self.cfg.train.finetune)
        self.model_iteration = iteration
        return self.policy

    def _finish_model(self, iteration: int, started: float) -> None:
        """Save M_iteration and queue its iterations row (commits with the stage)."""
        assert self.policy is not None
        path = save_checkpoint(self.policy, checkpoint_dir(self.store, iteration))
        self.model_iteration = iteration
        self.store.append_rows(
            "iterations",
            [{"iteration": iteration, "model_name": f"M{iteration}", "checkpoint": str(path),
              "started_at": _ts(started), "finished_at": None}],
        )

    # ---- running ----------------------------------------------------------------------------
    def run(self) -> Path:
        done = self.store.finished_stages()
        stages = plan(self.cfg)
        with self.stop.installed():
            for stage in stages:
                if (stage.iteration, stage.name) in done:
                    continue
                if self.stop.requested:
                    raise Interrupted(f"interrupted; resume with: presrm run --resume {self.store.path}")
                deletes = [(t, w, [stage.iteration]) for t, w in STAGE_ROWS[stage.name]]
                self.store.discard(deletes)
                started = time.time()
                self.timings = {}
                detail = getattr(self, f"_stage_{stage.name}")(stage.iteration, started) or {}
                wall = time.time() - started
                # Where the stage's wall time went (sampling / judging / training / logging seconds).
                detail.update({f"{k}_s": round(v, 3) for k, v in self.timings.items()})
                self.store.flush(StageDone(stage.iteration, stage.name, wall, detail))
                console.print(_summary_line(stage, wall, detail))
        return self.store.path

    def _stage_warmup(self, iteration: int, started: float) -> dict[str, Any]:
        from presrm.eft_test import user_eft_split
        from presrm.train.eft import build_eft_pairs, eft_examples, ift_examples
        from presrm.train.sft import train_sft

        policy = self._ensure_model(iteration - 1)
        w = self.cfg.warmup
        rng = random.Random(f"{self.cfg.seed}:warmup")
        problems = self.task.sample(max(w.ift_examples, 1), "train", seed=self.cfg.seed + 10_000)
        examples = ift_examples(policy, self.task, problems[: w.ift_examples])
        pairs = build_eft_pairs(self.task, problems, rng, w.eft_examples) if w.eft_examples else []
        pairs += user_eft_split(self.cfg)[0]  # its held-out part is judged in every eval
        examples += eft_examples(policy, pairs, with_check=self.cfg.judge.check)
        rng.shuffle(examples)
        records = self._train_logged(
            "warmup", iteration, len(examples),
            lambda log: train_sft(policy, examples, lr=w.lr, epochs=w.epochs, batch_size=self.cfg.train.batch_size,
                                  seed=self.cfg.seed, log=log),
        )
        self._finish_model(iteration, started)
        return {"ift_examples": w.ift_examples, "eft_pairs": len(pairs), "updates": len(records)}

    def _stage_search(self, iteration: int, started: float) -> dict[str, Any]:
        policy = self._ensure_model(iteration - 1)
        problems = self.task.sample(self.cfg.problems, "train", seed=self.cfg.seed * 1000 + iteration)
        self._store_problems(problems, "train", iteration)
        trees = self._search(policy, problems, iteration, "train", self.cfg.width, self.cfg.sampling.temperature)
        return {"problems": len(problems), "nodes": sum(len(t.nodes) for t in trees),
                "judgments": sum(len(t.judgments) for t in trees),
                "train_accuracy": sum(t.correct for t in trees) / max(1, len(trees))}

    def _stage_train(self, iteration: int, started: float) -> dict[str, Any]:
        policy = self._ensure_model(iteration - 1)
        t = self.cfg.train
        if self.cfg.algo == "step-dpo":
            from presrm.train.dpo import train_step_dpo

            pairs = dpo_pairs_from_store(self.store.path, policy, iteration)
            records = self._train_logged(
                "step-dpo", iteration, len(pairs),
                lambda log: train_step_dpo(policy, pairs, beta=t.beta, lr=t.lr, epochs=t.epochs,
                                           batch_size=t.batch_size, seed=self.cfg.seed + iteration, log=log),
            )
            n_data = len(pairs)
        else:
            from presrm.train.ppo import PPOConfig, StepPPOTrainer

            rollouts = ppo_rollouts_from_store(self.store.path, policy, iteration, reward=t.reward)
            trainer = StepPPOTrainer(
                policy.model, policy.tokenizer,
                PPOConfig(lr=t.lr, kl_coef=t.kl_coef, ppo_epochs=t.ppo_epochs, minibatch_size=t.batch_size,
                          seed=self.cfg.seed + iteration),
            )
            records = self._train_logged("ppo", iteration, len(rollouts), lambda log: _ppo_logged(trainer, rollouts, log))
            n_data = len(rollouts)
        self._finish_model(iteration, started)
        return {"algo": self.cfg.algo, "examples": n_data, "updates": len(records)}

    def _stage_eval(self, iteration: int, started: float) -> dict[str, Any]:
        from presrm.evaluate import summarize_iteration, write_summary

        policy = self._ensure_model(iteration)
        problems = self.task.sample(self.cfg.eval_problems, "eval", seed=self.cfg.seed)
        self._store_problems(problems, "eval", iteration)
        greedy = self._search(policy, problems, iteration, "greedy", 1, 0.0)
        self._store_evals(greedy, iteration, "greedy")
        if self.cfg.eval_search:
            trees = self._search(policy, problems, iteration, "eval", self.cfg.width, self.cfg.sampling.temperature)
            self._store_evals(trees, iteration, "search")
        self._judge_eft_test(policy, iteration)
        self.store.flush()  # metrics are computed from the stored rows
        summary = summarize_iteration(self.store.path, iteration)
        write_summary(self.store, iteration, summary)
        self.store.execute_on_flush(
            "UPDATE iterations SET finished_at = ? WHERE run_id = ? AND iteration = ?",
            [_ts(time.time()), self.store.run_id, iteration],
        )
        if iteration == 0:
            self.store.append_rows("iterations", [{"iteration": 0, "model_name": "M0", "checkpoint": None,
                                                   "started_at": _ts(started), "finished_at": _ts(time.time())}])
        return {k: v for k, v in summary.items() if k in ("accuracy_greedy", "accuracy_search", "judge_accuracy")}

    # ---- pieces -----------------------------------------------------------------------------
    def _search(self, policy: Policy, problems: list[Problem], iteration: int, phase: str, width: int,
                temperature: float) -> list[Tree]:
        judge = self.judge_factory(policy, self.cfg.judge) if width > 1 else None
        settings = SearchSettings(
            width=width, max_steps=self.cfg.max_steps, temperature=temperature, top_p=self.cfg.sampling.top_p,
            max_step_tokens=self.cfg.sampling.max_step_tokens, seed=self.cfg.seed * 7919 + iteration,
        )
        trees: list[Tree] = []
        batch = self.cfg.batch_problems
        timings = self.timings
        with _progress(f"M{iteration} {phase}", len(problems)) as advance:
            for start in range(0, len(problems), batch):
                if self.stop.requested:
                    raise Interrupted(f"interrupted; resume with: presrm run --resume {self.store.path}")
                chunk = search(policy, judge, self.task, problems[start:start + batch],
                               settings, self.store, timings=timings)
                t0 = time.perf_counter()
                self.store.append_columns("nodes", node_columns(chunk, iteration=iteration, phase=phase))
                self.store.append_columns("judgments", judgment_columns(chunk, iteration=iteration, phase=phase))
                # Live progress for readers; a reader holding the lock only delays this.
                self.store.flush(wait=False)
                timings["logging"] = timings.get("logging", 0.0) + time.perf_counter() - t0
                trees += chunk
                advance(len(chunk))
        return trees

    def _store_problems(self, problems: list[Problem], split: str, iteration: int) -> None:
        if split == "eval" and iteration > 0:
            return  # eval problems are the same every iteration: stored once, with iteration 0
        self.store.append_rows("problems", [
            {"problem_id": p.problem_id, "split": split, "iteration": iteration, "question": p.question,
             "answer": p.answer, "reference_steps": list(p.steps), "source": p.source} for p in problems
        ])

    def _store_evals(self, trees: list[Tree], iteration: int, mode: str) -> None:
        rows = []
        for tree in trees:
            scores = [n.soft_score for n in tree.path if n.soft_score is not None]  # graded, see schema
            final = tree.final
            rows.append({
                "iteration": iteration, "mode": mode, "problem_id": tree.problem.problem_id,
                "tree_id": tree.tree_id, "final_answer": final.final_answer if final else None,
                "correct": tree.correct, "n_steps": len(tree.path),
                "n_tokens": sum(n.n_tokens for n in tree.path),
                "min_score": min(scores) if scores else None,
                "mean_score": sum(scores) / len(scores) if scores else None,
                "last_score": scores[-1] if scores else None,
            })
        self.store.append_rows("evals", rows)

    def _judge_eft_test(self, policy: Policy, iteration: int) -> None:
        """Judge accuracy on held-out judge pairs (the paper's Table 3), both orders."""
        from presrm.eft_test import judge_eft_test

        judge_eft_test(policy, self.cfg, self.task, self.store, iteration)

    def _train_logged(self, stage: str, iteration: int, n: int, fn: Callable[[Callable[[int, dict], None]], list]) -> list:
        rows: list[dict[str, Any]] = []

        def log(step: int, metrics: dict[str, float]) -> None:
            for name, value in metrics.items():
                if isinstance(value, int | float):
                    rows.append({"iteration": iteration, "stage": stage, "step": step, "metric": name,
                                 "value": float(value)})

        if n == 0:
            console.print(f"[yellow]M{iteration} {stage}: no training data; the model is unchanged[/yellow]")
            return []
        console.print(f"M{iteration} {stage}: training on {n} examples")
        t0 = time.perf_counter()
        records = fn(log)
        self.timings["training"] = self.timings.get("training", 0.0) + time.perf_counter() - t0
        self.store.append_rows("train_steps", rows)
        return records


def _ppo_logged(trainer: Any, rollouts: list[Any], log: Callable[[int, dict], None]) -> list[dict[str, float]]:
    records: list[dict[str, float]] = trainer.train(rollouts)
    for step, metrics in enumerate(records):
        log(step, metrics)
    return records


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[int], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        task_id = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task_id, n)


def _ts(seconds: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).replace(tzinfo=None)


def _summary_line(stage: Stage, wall: float, detail: dict[str, Any]) -> str:
    parts = [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in detail.items() if v is not None]
    return f"[bold]M{stage.iteration} {stage.name}[/bold] done in {wall:.1f}s  " + "  ".join(parts)


def start_run(cfg: RunConfig) -> Path:
    """Create the run file for ``cfg`` and run every stage."""
    # Fail on a bad task or model spec before creating anything on disk.
    load_task(cfg.task, cfg.task_options)
    policy = load_policy(cfg.model, device=cfg.device, seed=cfg.seed)
    store = RunStore.create(cfg.out, cfg)
    loop = Loop(store)
    loop.policy, loop.model_iteration = prepare_for_training(policy, cfg.train.finetune), 0
    return loop.run()


def resume_run(path: Path) -> Path:
    """Continue a run file from its last finished stage."""
    return Loop(RunStore.open(path)).run()
