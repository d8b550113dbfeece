"""The embedded default model: a small character-level Llama that presrm trains itself.

No model hub is reachable at run time and no model small enough to ship can do
arithmetic (design.md §5: SmolLM2-135M cannot add), so ``model = "default"`` is a
model *earned* here: a few-hundred-thousand-parameter Llama with the character
vocabulary (one token per digit), trained from a fixed seed on the built-in arith
task's step-formatted solutions.

This is **M0**, the base model of the paper's loop. It writes the step format and
solves part of the task; it has never seen a judge prompt, so it is no judge yet.
The run's IFT + EFT warm-up (``presrm.train.sft`` on ``presrm.train.eft`` data)
turns it into M1, a usable judge — as in the paper, EFT is what makes the judge.

It is trained once and cached as a presrm checkpoint under
``cache_dir()/default-<key>/``, where the key hashes the recipe (shape, data,
optimiser, seed) and this module's format version: the same recipe always gives the
same directory, a changed recipe a new one. Loading a cached model takes well under
a second; building it takes a few minutes on a laptop CPU (progress on stderr).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from presrm.charvocab import build_char_tokenizer
from presrm.errors import ModelError
from presrm.models import (
    Policy,
    _finish,
    cache_dir,
    load_checkpoint,
    resolve_device,
    resolve_dtype,
    save_checkpoint,
)
from presrm.tasks import Task, load_task
from presrm.train.eft import SFTExample, build_eft_pairs, eft_examples, ift_examples
from presrm.train.sft import IGNORE_INDEX, tokenize_sft

RECIPE_FORMAT = 1  # bump when the training code changes what a recipe produces
DEFAULT_SPEC = "default"

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the base model's weights (hashed into its cache key).

    ``task_options`` is the arith difficulty the model is trained on. ``eft_fraction`` is
    the share of judge examples in the base data (0: the base is a pure solver, as the
    paper's M0). ``steps`` optimizer updates of ``batch_size`` sequences each.
    """

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    task_options: tuple[tuple[str, Any], ...] = (("max_operand", 20), ("n_ops", 2), ("ops", "+-"))
    steps: int = 600
    batch_size: int = 32
    lr: float = 2e-3
    warmup_fraction: float = 0.05
    weight_decay: float = 0.01
    eft_fraction: float = 0.0
    drill_fraction: float = 0.0
    drill_facts: int = 10
    max_pool: int = 12_000
    bf16: bool = True  # bf16 autocast: ~2x faster on CPUs with bf16 instructions, fp32 master weights
    seed: int = 0
    data_seed: int = 1_000_003  # train problems are drawn with this seed (not the run's problem seeds)
    extra: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def key(self) -> str:
        """Cache key: a hash of the recipe and the recipe format."""
        raw = json.dumps({"format": RECIPE_FORMAT, **asdict(self)}, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def options(self) -> dict[str, Any]:
        return dict(self.task_options)


# Chosen by measurement on 2026-11-27 (README "The embedded default model"; greedy accuracy on 200
# held-out problems at the end of each schedule): peak lr 3e-3 for 2,500 updates gave 31%, lr 1e-3
# gave 92.5% (too strong: no room to improve), 1e-3 for 1,750 updates 35.5%, for 1,500 updates 46%.
# 1,500 updates of 16 sequences (15% single-operation drill) take ~3 minutes on this 2-core CPU.
DEFAULT_RECIPE = Recipe(steps=1500, batch_size=16, lr=1e-3, drill_fraction=0.15, drill_facts=16)

# Run settings measured with the default model on this kind of machine (2 CPU cores):
# README "The embedded default model". presrm.config owns the defaults; these are what
# benchmarks/measure_default.py runs with, so the measured numbers are the defaults' numbers.
RECOMMENDED_CONFIG: dict[str, Any] = {
    "model": DEFAULT_SPEC,
    "task": "arith",
    "task_options": {"n_ops": 2, "max_operand": 20, "ops": "+-"},
    "warmup": {"ift_examples": 400, "eft_examples": 400, "eft_test_examples": 100, "lr": 3e-5, "epochs": 1},
    "train": {"batch_size": 8},
}


def default_dir(recipe: Recipe | None = None) -> Path:
    """Where the base model of ``recipe`` (default: :data:`DEFAULT_RECIPE`) is cached."""
    return cache_dir() / f"default-{(recipe or DEFAULT_RECIPE).key()}"


# ---------------------------------------------------------------------------------------------
# model


def build_model(recipe: Recipe) -> tuple[LlamaForCausalLM, Any]:
    """A freshly initialised Llama of the recipe's shape and the character tokenizer."""
    tokenizer = build_char_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.num_heads,
        num_key_value_heads=recipe.num_heads,
        max_position_embeddings=1024,  # judge prompts are ~350 characters
        # Tied embeddings: with ~100 characters the output matrix adds nothing but parameters.
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.seed)
        model = LlamaForCausalLM(config)
    return model, tokenizer


# ---------------------------------------------------------------------------------------------
# data


def base_examples(policy: Policy, recipe: Recipe, n: int) -> list[SFTExample]:
    """``n`` training examples: whole step-formatted solutions, plus judge pairs if asked.

    Solutions use exactly the text the search produces step by step (``Question: …\\n``,
    then ``Step k: …\\n`` lines, EOS after the answer), so whatever the base learns is what
    the search will ask of it.
    """
    task = load_task("arith", recipe.options())
    n_eft = round(n * recipe.eft_fraction)
    n_drill = round(n * recipe.drill_fraction)
    problems = task.sample(n - n_eft - n_drill, "train", seed=recipe.data_seed)
    examples = ift_examples(policy, task, problems, mode="solution")
    if n_drill:
        examples += drill_examples(task, n_drill, recipe.drill_facts, recipe.data_seed + 2)
    if n_eft:
        eft_problems = task.sample(n_eft, "train", seed=recipe.data_seed + 1)
        pairs = build_eft_pairs(task, eft_problems, random.Random(f"{recipe.seed}:base-eft"), n_eft)
        examples += eft_examples(policy, pairs, with_check=True)
    random.Random(f"{recipe.seed}:base-order").shuffle(examples)
    return examples


def drill_examples(task: Task, n: int, facts: int, seed: int) -> list[SFTExample]:
    """``n`` arithmetic drills: ``facts`` equations of the task's steps, one per line.

    Why: a small model trained on whole solutions alone spends most of its budget failing
    at the sums themselves (measured: operands copied right ~60%, sums right ~12%). An
    equation line costs ~12 characters against ~165 for a solution, so drills teach the
    arithmetic of the task far more cheaply. The equations are the reference steps of
    train problems, so they follow the task's own distribution of running totals.
    """
    # A few thousand problems cover the task's equations (the default task has only ~16k
    # train problems at all); the lines are reused in a new order when more are needed.
    problems = task.sample(min(4000, max(1, n * facts // 2 + 1)), "train", seed=seed)
    lines = [step for p in problems for step in p.steps if "=" in step]
    rng = random.Random(f"{seed}:drills")
    rng.shuffle(lines)
    out = []
    pool: list[str] = []
    for _ in range(n):
        if len(pool) < facts:
            pool += rng.sample(lines, len(lines))
        chunk, pool = pool[:facts], pool[facts:]
        out.append(SFTExample("", "".join(line + "\n" for line in chunk), eos=False))
    return out


def _batches(rows: list[dict[str, list[int]]], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Index batches: shuffled, then sorted by length within windows so batches pad little."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    window = batch_size * 16
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(rows[i]["input_ids"]))
        batches += [chunk[j : j + batch_size] for j in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _collate(rows: Sequence[dict[str, list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, mask and labels (-100 on prompt and padding)."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# ---------------------------------------------------------------------------------------------
# training


def _lr_at(step: int, total: int, peak: float, warmup_fraction: float) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    warm = max(1, int(total * warmup_fraction))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def train_examples(
    policy: Policy,
    examples: Sequence[SFTExample],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    warmup_fraction: float = 0.05,
    weight_decay: float = 0.01,
    bf16: bool = True,
    progress: ProgressFn | None = None,
    log_every: int = 50,
    on_step: Callable[[int], None] | None = None,
) -> list[float]:
    """Train ``policy.model`` in place for ``steps`` updates (loss on completions only).

    A plain torch loop rather than TRL: for a sub-million-parameter model the trainer's
    per-step overhead is a large share of the step. Epochs repeat the examples in a
    fresh order. ``on_step(k)`` is called after update k. Returns the loss of every step.
    """
    if steps < 1 or batch_size < 1 or not examples:
        raise ValueError("steps and batch_size must be >= 1 and examples non-empty")
    model = policy.model
    rows = tokenize_sft(policy, examples)
    pad_id = int(policy.tokenizer.pad_token_id)
    rng = random.Random(f"{seed}:batches")
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.98),
    )
    use_bf16 = bf16 and policy.device.type == "cpu" and _cpu_has_bf16()
    losses: list[float] = []
    queue: list[list[int]] = []
    started = time.time()
    model.train()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for step in range(steps):
            if not queue:
                queue = _batches(rows, batch_size, rng)
            batch = {k: v.to(policy.device) for k, v in _collate([rows[i] for i in queue.pop()], pad_id).items()}
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, steps, lr, warmup_fraction)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if progress is not None and ((step + 1) % log_every == 0 or step + 1 == steps):
                recent = losses[-log_every:]
                progress(
                    f"step {step + 1}/{steps}  loss {sum(recent) / len(recent):.3f}  "
                    f"{time.time() - started:.0f}s"
                )
            if on_step is not None:
                on_step(step + 1)  # e.g. a measurement; the model is in train mode again after it
                model.train()
    model.eval()
    return losses


def _cpu_has_bf16() -> bool:
    """bf16 autocast helps only where the CPU has bf16 instructions (it is slower elsewhere)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def train_base(recipe: Recipe, *, progress: ProgressFn | None = None) -> Policy:
    """Build the base model of ``recipe`` from its seed (CPU, fp32 weights). Not cached."""
    model, tokenizer = build_model(recipe)
    policy = _finish(model, tokenizer, DEFAULT_SPEC, torch.device("cpu"), torch.float32, seed=recipe.seed)
    # A pool of at most max_pool examples; training repeats it in new orders (epochs).
    examples = base_examples(policy, recipe, min(recipe.steps * recipe.batch_size, recipe.max_pool))
    train_examples(
        policy,
        examples,
        steps=recipe.steps,
        batch_size=recipe.batch_size,
        lr=recipe.lr,
        seed=recipe.seed,
        warmup_fraction=recipe.warmup_fraction,
        weight_decay=recipe.weight_decay,
        bf16=recipe.bf16,
        progress=progress,
    )
    return policy


def _stderr(message: str) -> None:
    print(f"presrm default model: {message}", file=sys.stderr, flush=True)


def ensure_default(recipe: Recipe | None = None, *, progress: ProgressFn | None = _stderr) -> Path:
    """The cached base model's directory, training and saving it first if it is missing.

    Written to a temporary directory and renamed, so a killed build leaves nothing half
    written and two processes building at once both end up with one complete copy.
    """
    # Looked up at call time (not as a default argument), so tests can swap the recipe.
    recipe = recipe or DEFAULT_RECIPE
    target = default_dir(recipe)
    if (target / "presrm_checkpoint.json").is_file():
        return target
    if progress is not None:
        progress(f"training the embedded default model once (cached in {target}); this takes a few minutes")
    started = time.time()
    policy = train_base(recipe, progress=progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        save_checkpoint(policy, tmp)
        (tmp / "recipe.json").write_text(
            json.dumps({"format": RECIPE_FORMAT, **asdict(recipe)}, indent=2, default=str) + "\n"
        )
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "presrm_checkpoint.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress is not None:
        progress(f"done in {time.time() - started:.0f}s")
    return target


def load_default(
    device: str = "auto",
    dtype: str = "auto",
    *,
    recipe: Recipe | None = None,
    progress: ProgressFn | None = _stderr,
) -> Policy:
    """The embedded default model (M0), built and cached on first use."""
    resolve_dtype(dtype, resolve_device(device))  # fail on a bad device/dtype before training
    path = ensure_default(recipe, progress=progress)
    try:
        policy = load_checkpoint(path, device=device, dtype=dtype)
    except ModelError as exc:
        raise ModelError(f"{path}: cached default model is unreadable; delete the directory ({exc})") from exc
    policy.spec = DEFAULT_SPEC
    return policy
