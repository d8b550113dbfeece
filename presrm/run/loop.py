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

Data parallel (``torchrun`` / ``accelerate launch``, see presrm/run/distributed.py): every rank
runs this loop. Search and eval shard the problems over the ranks (``part[rank::world]`` of
each global batch) and rank 0 gathers the trees, gives them their ids and writes them;
training data is read by rank 0 and broadcast, and every rank trains on its share with
gradients all-reduced. Only rank 0 opens the run file: the other ranks hold a
``ReplicaStore``, which drops the rows handed to it, so the code below buffers rows on
every rank but only computes or reads what needs the file where ``self.dist.is_main``.
Terminal output and progress bars come from rank 0 only.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from presrm import faults
from presrm.config import JudgeConfig
from presrm.errors import Interrupted, PresrmError
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.run.checkpoint_io import save_whole
from presrm.run.console import console, search_progress, stage_progress, summary_line, update_progress
from presrm.run.distributed import SINGLE, Dist, weights_digest
from presrm.run.empty_stage import check_not_empty
from presrm.run.gather import interleave, renumber
from presrm.run.levels import level_mode, level_options, training_level
from presrm.run.memory import stage_memory
from presrm.run.plan import checkpoint_dir, plan
from presrm.run.prepare import prepare_policy
from presrm.run.resume_point import resumable_stages
from presrm.run.stop import StopFlag
from presrm.search.judges import own_judge_factory
from presrm.search.modes.base import JudgeMode
from presrm.search.tree import LocalIds, SearchSettings, Tree
from presrm.search.tree_search import search
from presrm.store.rows import eval_rows, judgment_columns, node_columns, problem_rows
from presrm.store.stage_rows import STAGE_ROWS
from presrm.store.writer import RunStore, StageDone
from presrm.tasks import load_task
from presrm.tasks.base import Problem, Task
from presrm.trackers import Tracking
from presrm.train.default_recipe import ensure_model
from presrm.train.value_head import ValueHead, load_value_head

JudgeFactory = Callable[[Policy, JudgeConfig], JudgeMode]
TrainFn = Callable[[Callable[[int, dict], None]], list]  # trains, calling log(step, metrics) per update


class Loop:
    """Runs the stages of one run file."""

    def __init__(
        self, store: RunStore, *, judge_factory: JudgeFactory | None = None, dist: Dist = SINGLE
    ) -> None:
        self.store = store
        self.dist = dist
        if not dist.is_main:
            console.quiet = True  # one terminal: rank 0 speaks for the run
        # Tests pass a fixed verdict source here; runs use the policy itself as judge.
        self.cfg = store.config
        self.device = dist.device(self.cfg.device)
        self.task: Task = load_task(self.cfg.task, self.cfg.task_options)
        self._level_tasks: dict[int, Task] = {}  # a curriculum's levels and the held-out ones
        self.judge_factory: JudgeFactory = judge_factory or own_judge_factory(self.task, self.cfg)
        self.stop = StopFlag()
        self.policy: Policy | None = None
        self.value_head: ValueHead | None = None  # PPO's critic of M_model_iteration, saved with it
        self.model_iteration = -1
        self.timings: dict[str, float] = {}
        # report_to: rank 0 alone reports, as it alone writes the run file.
        self.tracking = Tracking(self.cfg.report_to if dist.is_main else [], store.path, store.run_id)

    # ---- model chain ------------------------------------------------------------------------

    def _ensure_model(self, iteration: int) -> Policy:
        """The model M_iteration (loaded from its checkpoint when not in memory)."""
        if self.policy is not None and self.model_iteration == iteration:
            return self.policy
        with self.dist.main_first():  # the default model is built once into a cache
            dtype, head = self.cfg.dtype, None
            if iteration == 0:
                ensure_model(self.cfg.model)
                policy = load_policy(self.cfg.model, device=self.device, dtype=dtype, seed=self.cfg.seed)
            else:
                path = checkpoint_dir(self.store, iteration)
                policy = load_checkpoint(path, device=self.device, dtype=dtype)
                head = load_value_head(path, policy.device)
        self.value_head = head
        self.policy = prepare_policy(policy, self.cfg)
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
        path = save_whole(self.policy, self.value_head, checkpoint_dir(self.store, iteration))
        self.store.append_rows(
            "iterations",
            [
                {
                    "iteration": iteration,
                    "model_name": f"M{iteration}",
                    "checkpoint": str(path),
                    "started_at": _ts(started),
                    "finished_at": None,
                }
            ],
        )
        return detail

    def _stop_requested(self) -> bool:
        """Ctrl-C seen by any rank (a collective: every rank asks at the same points)."""
        return self.dist.any(self.stop.requested)

    def _interrupted(self) -> Interrupted:
        return Interrupted(f"interrupted; resume with: presrm run --resume {self.store.path}")

    # ---- running ----------------------------------------------------------------------------
    def run(self) -> Path:
        stages = plan(self.cfg)
        done = self.dist.from_main(lambda: resumable_stages(self.store, stages))
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
                with stage_memory(f"M{stage.iteration} {stage.name}", self.store.path), stage_progress(stage):
                    detail = getattr(self, f"_stage_{stage.name}")(stage.iteration, started) or {}
                wall = time.time() - started
                # Where the stage's wall time went (sampling / judging / training / logging seconds).
                detail.update({f"{k}_s": round(v, 3) for k, v in self.timings.items()})
                self.store.flush(StageDone(stage.iteration, stage.name, wall, detail))
                self.tracking.stage_done(self.store.path, stage.iteration, stage.name, detail)
                console.print(summary_line(stage, wall, detail))
                faults.point("stage")
        return self.store.path

    def _stage_warmup(self, iteration: int, started: float) -> dict[str, Any]:
        from presrm.eval.judge_eval import user_eft_split
        from presrm.train.eft import ift_examples, judge_examples
        from presrm.train.eft_rollouts import warmup_eft_pairs, warmup_problem_count
        from presrm.train.sft import train_sft

        policy = self._ensure_model(iteration - 1)
        w = self.cfg.warmup

        def build() -> tuple[list[Any], int]:
            rng = random.Random(f"{self.cfg.seed}:warmup")
            problems = self.task.sample(warmup_problem_count(w), "train", seed=self.cfg.seed + 10_000)
            examples = ift_examples(policy, self.task, problems[: w.ift_examples])
            pairs = warmup_eft_pairs(policy, self.task, problems, self.cfg, rng)  # warmup.eft_source
            pairs += user_eft_split(self.cfg)[0]  # its held-out part is judged in every eval
            examples += judge_examples(policy, pairs, self.cfg.judge)  # in the run's judge form
            rng.shuffle(examples)
            return examples, len(pairs)

        examples, n_pairs = self.dist.from_main(build)  # every rank trains on the same list's shards
        records = self._train_logged(
            "warmup",
            iteration,
            len(examples),
            lambda log: train_sft(policy, examples, w, seed=self.cfg.seed, log=log),
        )
        replicas = self._finish_model(iteration, started)
        return {"ift_examples": w.ift_examples, "eft_pairs": n_pairs, "updates": len(records), **replicas}

    def _stage_search(self, iteration: int, started: float) -> dict[str, Any]:
        policy = self._ensure_model(iteration - 1)
        level = self.dist.from_main(lambda: training_level(self.store.path, self.cfg, iteration))
        task = self._task_at(level)
        problems = task.sample(self.cfg.problems, "train", seed=self.cfg.seed * 1000 + iteration)
        self._store_problems(problems, "train", iteration)
        trees = self._search(
            policy, problems, iteration, "train", self.cfg.width, self.cfg.sampling.temperature, task
        )
        return {
            **({} if level is None else {"level": level}),
            "problems": len(problems),
            "nodes": sum(len(t.nodes) for t in trees),
            "judgments": sum(len(t.judgments) for t in trees),
            "train_accuracy": sum(t.correct for t in trees) / max(1, len(trees)),
        }

    def _stage_train(self, iteration: int, started: float) -> dict[str, Any]:
        from presrm.run.trainers import TRAINERS

        policy = self._ensure_model(iteration - 1)
        records, n_data, extra = TRAINERS[self.cfg.algo](self, policy, iteration)
        replicas = self._finish_model(iteration, started)
        return {"algo": self.cfg.algo, "examples": n_data, "updates": len(records), **extra, **replicas}

    def _stage_eval(self, iteration: int, started: float) -> dict[str, Any]:
        from presrm.eval.evaluate import summarize_iteration, write_summary

        policy = self._ensure_model(iteration)
        problems = self.task.sample(self.cfg.eval_problems, "eval", seed=self.cfg.seed)
        self._store_problems(problems, "eval", iteration)
        greedy = self._search(policy, problems, iteration, "greedy", 1, 0.0)
        self._store_evals(greedy, iteration, "greedy")
        if self.cfg.eval_search:
            trees = self._search(
                policy, problems, iteration, "eval", self.cfg.width, self.cfg.sampling.temperature
            )
            self._store_evals(trees, iteration, "search")
        for level in self.cfg.curriculum.eval_levels:  # held-out levels: greedy only
            task = self._task_at(level)
            held_out = task.sample(self.cfg.eval_problems, "eval", seed=self.cfg.seed)
            self._store_problems(held_out, "eval", iteration)
            solved = self._search(policy, held_out, iteration, "greedy", 1, 0.0, task)
            self._store_evals(solved, iteration, level_mode(self.cfg, level))
        if not self.dist.is_main:
            return {}  # the rest reads and writes the run file: rank 0's part
        self._judge_eft_test(policy, iteration)
        self.store.flush()  # metrics are computed from the stored rows
        summary = summarize_iteration(self.store.path, iteration)
        write_summary(self.store, iteration, summary)
        self.store.mark_iteration_finished(iteration, _ts(time.time()))
        if iteration == 0:
            self.store.append_rows(
                "iterations",
                [
                    {
                        "iteration": 0,
                        "model_name": "M0",
                        "checkpoint": None,
                        "started_at": _ts(started),
                        "finished_at": _ts(time.time()),
                    }
                ],
            )
        return {
            k: v for k, v in summary.items() if k in ("accuracy_greedy", "accuracy_search", "judge_accuracy")
        }

    # ---- pieces -----------------------------------------------------------------------------
    def _task_at(self, level: int | None) -> Task:
        """The run's task at a level of curriculum.option (None: as configured)."""
        if level is None:
            return self.task
        if level not in self._level_tasks:
            self._level_tasks[level] = load_task(self.cfg.task, level_options(self.cfg, level))
        return self._level_tasks[level]

    def _search(
        self,
        policy: Policy,
        problems: list[Problem],
        iteration: int,
        phase: str,
        width: int,
        temperature: float,
        task: Task | None = None,
    ) -> list[Tree]:
        task = task or self.task
        judge = self.judge_factory(policy, self.cfg.judge) if width > 1 else None
        faults.watch_judge(judge)
        settings = SearchSettings(
            width=width,
            max_steps=self.cfg.max_steps,
            temperature=temperature,
            top_p=self.cfg.sampling.top_p,
            max_step_tokens=self.cfg.sampling.max_step_tokens,
            seed=self.cfg.seed * 7919 + iteration,
            greedy_candidate=self.cfg.sampling.greedy_candidate,
            switch_margin=self.cfg.judge.switch_margin,
            max_rows=self.cfg.sampling.max_rows,
            pair_rule=self.cfg.judge.pair_rule,
        )
        trees: list[Tree] = []
        # Data parallel: a global batch is world × batch_problems problems, rank r searches
        # part[r::world] of it, and rank 0 numbers and writes the gathered trees.
        dist = self.dist
        batch = self.cfg.batch_problems * dist.world
        timings = self.timings
        with search_progress(iteration, phase, len(problems)) as advance:
            for start in range(0, len(problems), batch):
                if self._stop_requested():
                    raise self._interrupted()
                part = problems[start : start + batch]
                if not dist.enabled:
                    chunk = search(policy, judge, task, part, settings, self.store, timings=timings)
                else:
                    mine = part[dist.rank :: dist.world]
                    local = (
                        search(policy, judge, task, mine, settings, LocalIds(), timings=timings)
                        if mine
                        else []
                    )
                    gathered = dist.gather(local)
                    if gathered is None:  # not rank 0: its trees are with rank 0 now
                        continue
                    chunk = renumber(interleave(gathered), self.store)
                t0 = time.perf_counter()
                self.store.append_columns("nodes", node_columns(chunk, iteration=iteration, phase=phase))
                self.store.append_columns(
                    "judgments", judgment_columns(chunk, iteration=iteration, phase=phase)
                )
                # Live progress for readers; a reader holding the lock only delays this.
                self.store.flush(wait=False)
                faults.point("search" if phase == "train" else "eval")
                timings["logging"] = timings.get("logging", 0.0) + time.perf_counter() - t0
                trees += chunk
                advance(len(chunk))
        return trees

    def _store_problems(self, problems: list[Problem], split: str, iteration: int) -> None:
        if split == "eval" and iteration > 0:
            return  # eval problems are the same every iteration: stored once, with iteration 0
        self.store.append_rows("problems", problem_rows(problems, split=split, iteration=iteration))

    def _store_evals(self, trees: list[Tree], iteration: int, mode: str) -> None:
        self.store.append_rows("evals", eval_rows(trees, iteration=iteration, mode=mode))

    def _judge_eft_test(self, policy: Policy, iteration: int) -> None:
        """Judge accuracy on held-out judge pairs (the paper's Table 3), both orders."""
        from presrm.eval.judge_eval import judge_eft_test

        judge_eft_test(policy, self.cfg, self.task, self.store, iteration)

    def _train_logged(
        self, stage: str, iteration: int, n: int, fn: TrainFn, updates: int | None = None
    ) -> list:
        rows: list[dict[str, Any]] = []

        def log(step: int, metrics: dict[str, float]) -> None:
            faults.point("train")
            for name, value in metrics.items():
                if isinstance(value, int | float):
                    row = {"iteration": iteration, "stage": stage, "step": step, "metric": name}
                    rows.append({**row, "value": float(value)})

        if not check_not_empty(stage, iteration, n, self.cfg, self.store.path, self.dist):
            console.print(f"[yellow]M{iteration} {stage}: no training data; the model is unchanged[/yellow]")
            return []
        console.print(f"M{iteration} {stage}: training on {n} examples")
        t0 = time.perf_counter()
        with (
            self.tracking.stage(iteration, stage) as tracked,
            update_progress(iteration, stage, updates) as seen,
        ):

            def log_tracked(step: int, metrics: dict[str, float]) -> None:
                log(step, metrics)
                seen(step)
                tracked.log(step, metrics)  # PPO and rft; a TRL trainer reports to it itself

            records = fn(log_tracked)
        self.timings["training"] = self.timings.get("training", 0.0) + time.perf_counter() - t0
        self.store.append_rows("train_steps", rows)
        return records


def _ts(seconds: float) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(seconds, dt.UTC).replace(tzinfo=None)
