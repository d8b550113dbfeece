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

Data parallel (``torchrun`` / ``accelerate launch``, see presrm/distributed.py): every rank
runs this loop. Search and eval shard the problems over the ranks (``part[rank::world]`` of
each global batch) and rank 0 gathers the trees, gives them their ids and writes them;
training data is read by rank 0 and broadcast, and every rank trains on its share with
gradients all-reduced. Only rank 0 opens the run file: the other ranks hold a
``ReplicaStore``, which drops the rows handed to it, so the code below buffers rows on
every rank but only computes or reads what needs the file where ``self.dist.is_main``.
Terminal output and progress bars come from rank 0 only.
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
from presrm.distributed import SINGLE, Dist, setup, weights_digest
from presrm.errors import ConfigError, Interrupted, PresrmError
from presrm.judge import ModelJudge, StepJudge
from presrm.models import Policy, load_checkpoint, load_policy, prepare_for_training, save_checkpoint
from presrm.search import LocalIds, SearchSettings, Tree, judgment_columns, node_columns, search
from presrm.store import RunStore, StageDone
from presrm.store.writer import ReplicaStore, read_identity
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

    # A launcher (torchrun) forwards the terminal's Ctrl-C to workers that got it already:
    # a repeat this soon after the first is the same Ctrl-C, not a second one.
    REPEAT_S = 1.0

    def __init__(self) -> None:
        self.requested = False
        self._first = 0.0

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        def handler(signum: int, frame: FrameType | None) -> None:
            if self.requested:
                if time.monotonic() - self._first < self.REPEAT_S:
                    return
                raise KeyboardInterrupt  # a second Ctrl-C stops at once
            self.requested = True
            self._first = time.monotonic()
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

    def __init__(self, store: RunStore, *, judge_factory: JudgeFactory | None = None, dist: Dist = SINGLE) -> None:
        self.store = store
        self.dist = dist
        if not dist.is_main:
            console.quiet = True  # one terminal: rank 0 speaks for the run
        # Tests pass a fixed verdict source here; runs use the policy itself as judge.
        self.judge_factory: JudgeFactory = judge_factory or (lambda policy, cfg: ModelJudge(policy, cfg))
        self.cfg = store.config
        self.device = dist.device(self.cfg.device)
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
        with self.dist.main_first():  # the default model is built once into a cache
            if iteration == 0:
                policy = load_policy(self.cfg.model, device=self.device, seed=self.cfg.seed)
            else:
                policy = load_checkpoint(checkpoint_dir(self.store, iteration), device=self.device)
        self.policy = _prepare(policy, self.cfg)
        self.model_iteration = iteration
        return self.policy

    def _finish_model(self, iteration: int, started: float) -> dict[str, Any]:
        """Save M_iteration and queue its iterations row (commits with the stage).

        Data parallel: first check that every rank holds the same weights (rank 0 saves them,
        the others go on with their own copy); the stage detail records each rank's digest
        (``weights_sha256_by_rank``, the first 16 hex digits of ``weights_digest``).
        """
        assert self.policy is not None
        detail: dict[str, Any] = {}
        if self.dist.enabled:
            digests = [d[:16] for d in self.dist.all_gather(weights_digest(self.policy.model))]
            if len(set(digests)) != 1:
                raise PresrmError(
                    f"M{iteration}: the {self.dist.world} replicas hold different weights after training"
                    f" ({', '.join(digests)}); sharded parameters (FSDP) are not supported"
                )
            detail = {"weights_sha256_by_rank": digests}
        self.model_iteration = iteration
        if not self.dist.is_main:
            return detail
        path = save_checkpoint(self.policy, checkpoint_dir(self.store, iteration))
        self.store.append_rows(
            "iterations",
            [{"iteration": iteration, "model_name": f"M{iteration}", "checkpoint": str(path),
              "started_at": _ts(started), "finished_at": None}],
        )
        return detail

    def _stop_requested(self) -> bool:
        """Ctrl-C seen by any rank (a collective: every rank asks at the same points)."""
        return self.dist.any(self.stop.requested)

    def _interrupted(self) -> Interrupted:
        return Interrupted(f"interrupted; resume with: presrm run --resume {self.store.path}")

    # ---- running ----------------------------------------------------------------------------
    def run(self) -> Path:
        done = self.dist.from_main(self.store.finished_stages)
        stages = plan(self.cfg)
        with self.stop.installed():
            for stage in stages:
                if (stage.iteration, stage.name) in done:
                    continue
                if self._stop_requested():
                    raise self._interrupted()
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

        def build() -> tuple[list[Any], int]:
            rng = random.Random(f"{self.cfg.seed}:warmup")
            problems = self.task.sample(max(w.ift_examples, 1), "train", seed=self.cfg.seed + 10_000)
            examples = ift_examples(policy, self.task, problems[: w.ift_examples])
            pairs = build_eft_pairs(self.task, problems, rng, w.eft_examples) if w.eft_examples else []
            pairs += user_eft_split(self.cfg)[0]  # its held-out part is judged in every eval
            examples += eft_examples(policy, pairs, with_check=self.cfg.judge.check)
            rng.shuffle(examples)
            return examples, len(pairs)

        examples, n_pairs = self.dist.from_main(build)  # every rank trains on the same list's shards
        records = self._train_logged(
            "warmup", iteration, len(examples),
            lambda log: train_sft(policy, examples, lr=w.lr, epochs=w.epochs, batch_size=self.cfg.train.batch_size,
                                  seed=self.cfg.seed, log=log),
        )
        replicas = self._finish_model(iteration, started)
        return {"ift_examples": w.ift_examples, "eft_pairs": n_pairs, "updates": len(records), **replicas}

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

            pairs = self.dist.from_main(lambda: dpo_pairs_from_store(
                self.store.path, policy, iteration, checker_agreed_only=t.dpo_pairs == "checker"))
            records = self._train_logged(
                "step-dpo", iteration, len(pairs),
                lambda log: train_step_dpo(policy, pairs, beta=t.beta, lr=t.lr, epochs=t.epochs,
                                           batch_size=t.batch_size, seed=self.cfg.seed + iteration,
                                           sft_weight=t.dpo_sft_weight, log=log),
            )
            n_data = len(pairs)
        else:
            from presrm.train.ppo import PPOConfig, StepPPOTrainer

            rollouts = self.dist.from_main(
                lambda: ppo_rollouts_from_store(self.store.path, policy, iteration, reward=t.reward)
            )
            trainer = StepPPOTrainer(
                policy.model, policy.tokenizer,
                PPOConfig(lr=t.lr, kl_coef=t.kl_coef, ppo_epochs=t.ppo_epochs, minibatch_size=t.batch_size,
                          seed=self.cfg.seed + iteration),
                # Data parallel: DDP over the run's process group, each rank on its share.
                accelerator=self.dist.accelerator(policy.device) if self.dist.enabled else None,
            )
            records = self._train_logged("ppo", iteration, len(rollouts), lambda log: _ppo_logged(trainer, rollouts, log))
            n_data = len(rollouts)
        replicas = self._finish_model(iteration, started)
        return {"algo": self.cfg.algo, "examples": n_data, "updates": len(records), **replicas}

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
        if not self.dist.is_main:
            return {}  # the rest reads and writes the run file: rank 0's part
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
        # Data parallel: a global batch is world × batch_problems problems, rank r searches
        # part[r::world] of it, and rank 0 numbers and writes the gathered trees.
        dist = self.dist
        batch = self.cfg.batch_problems * dist.world
        timings = self.timings
        with _progress(f"M{iteration} {phase}", len(problems)) as advance:
            for start in range(0, len(problems), batch):
                if self._stop_requested():
                    raise self._interrupted()
                part = problems[start:start + batch]
                if not dist.enabled:
                    chunk = search(policy, judge, self.task, part, settings, self.store, timings=timings)
                else:
                    mine = part[dist.rank::dist.world]
                    local = search(policy, judge, self.task, mine, settings, LocalIds(), timings=timings) if mine else []
                    gathered = dist.gather(local)
                    if gathered is None:  # not rank 0: its trees are with rank 0 now
                        continue
                    chunk = _renumber(_interleave(gathered), self.store)
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


def _interleave(parts: list[list[Tree]]) -> list[Tree]:
    """Undo the ``part[rank::world]`` split: the trees back in their problems' order."""
    out: list[Tree] = []
    for i in range(max((len(p) for p in parts), default=0)):
        out += [p[i] for p in parts if i < len(p)]
    return out


def _renumber(trees: list[Tree], store: RunStore) -> list[Tree]:
    """Give trees searched with per-rank ids (LocalIds) the run's ids, in place.

    Tree, node and judgment ids come from the store's counters, like in a one-process run;
    the references between them (a node's parent, a judgment's two nodes and winner) follow.
    """
    for tree in trees:
        (tree.tree_id,) = store.new_ids("tree", 1)
        new = dict(zip([n.node_id for n in tree.nodes], store.new_ids("node", len(tree.nodes)), strict=True))
        for node in {id(n): n for n in [*tree.nodes, *tree.path]}.values():  # each object once
            node.node_id = new[node.node_id]
            node.parent_id = None if node.parent_id is None else new[node.parent_id]
        for judgment, jid in zip(tree.judgments, store.new_ids("judgment", len(tree.judgments)), strict=True):
            judgment.judgment_id = jid
            judgment.node_a = new[judgment.node_a]
            judgment.node_b = None if judgment.node_b is None else new[judgment.node_b]
            judgment.winner = None if judgment.winner is None else new[judgment.winner]
    return trees


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


def _prepare(policy: Policy, cfg: RunConfig) -> Policy:
    """Make ``policy`` trainable the way the config says (a new adapter: its rank, scale and seed)."""
    t = cfg.train
    return prepare_for_training(policy, t.finetune, seed=cfg.seed, lora_r=t.lora_r, lora_alpha=t.lora_alpha)


def start_run(cfg: RunConfig) -> Path:
    """Create the run file for ``cfg`` and run every stage (in every process of a launched run)."""
    dist = setup(cfg.device)
    # Fail on a bad task or model spec before creating anything on disk.
    task = load_task(cfg.task, cfg.task_options)
    if cfg.algo == "step-dpo" and cfg.train.dpo_pairs == "checker" and not task.has_step_checker:
        raise ConfigError(f'train.dpo_pairs = "checker" needs a task with a step checker; {cfg.task!r} has none')
    with dist.main_first():  # the default model is built once into a cache
        policy = load_policy(cfg.model, device=dist.device(cfg.device), seed=cfg.seed)
    created = RunStore.create(cfg.out, cfg) if dist.is_main else None
    run_id = dist.from_main(lambda: created.run_id if created is not None else "")
    store = created if created is not None else ReplicaStore(cfg.out, run_id, cfg)
    loop = Loop(store, dist=dist)
    loop.policy, loop.model_iteration = _prepare(policy, cfg), 0
    return _run(loop)


def resume_run(path: Path) -> Path:
    """Continue a run file from its last finished stage."""
    # Every rank reads the stored config (read-only) to learn the device before the process
    # group exists; joining the group waits for all of them, so rank 0 then opens it alone.
    run_id, cfg = read_identity(path)
    dist = setup(cfg.device)
    store = RunStore.open(path) if dist.is_main else ReplicaStore(path, run_id, cfg)
    return _run(Loop(store, dist=dist))


def _run(loop: Loop) -> Path:
    try:
        path = loop.run()
    except Interrupted:
        loop.dist.finish()  # every rank stopped at the same point
        raise
    loop.dist.finish()
    return path
