"""How presrm trains the embedded default model, a small character-level Llama, from scratch.

No model hub is reachable at run time and no model small enough to ship can do
arithmetic (README: SmolLM2-135M cannot add), so ``model = "default"`` is a
model *earned* here: a few-hundred-thousand-parameter Llama with the character
vocabulary (one token per digit), trained from a fixed seed on the built-in arith
task's step-formatted solutions.

This is **M0**, the base model of the paper's loop. It writes the step format and
solves part of the task; it has never seen a judge prompt, so it is no judge yet.
The run's IFT + EFT warm-up (``presrm.train.sft`` on ``presrm.train.eft`` data)
turns it into M1, a usable judge — as in the paper, EFT is what makes the judge.

It is trained once and cached as a presrm checkpoint in ``presrm.model.default.default_dir``
(the recipe's hash names the directory); loading it is presrm.model.loading's job.
Building it takes a few minutes on a laptop CPU (progress on stderr).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from presrm.errors import ModelError
from presrm.model.charvocab import build_char_tokenizer
from presrm.model.checkpoints import save_checkpoint
from presrm.model.default import (
    COMPLETE_MARKER,
    DEFAULT_RECIPE,
    DEFAULT_SPEC,
    RECIPE_FORMAT,
    Recipe,
    built_dir,
    default_dir,
    unreadable_message,
)
from presrm.model.loading import load_checkpoint
from presrm.model.policy import Policy, finish_policy, resolve_device, resolve_dtype
from presrm.tasks import load_task
from presrm.tasks.base import Task
from presrm.train.eft import build_eft_pairs, eft_examples, ift_examples
from presrm.train.examples import SFTExample
from presrm.train.sft import tokenize_sft
from presrm.train.trl_support import IGNORE_INDEX

ProgressFn = Callable[[str], None]


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
    at the sums themselves: it learns to copy operands long before it learns to add. An
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
    on_loss: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train ``policy.model`` in place for ``steps`` updates (loss on completions only).

    A plain torch loop rather than TRL: for a sub-million-parameter model the trainer's
    per-step overhead is a large share of the step. Epochs repeat the examples in a
    fresh order. ``on_step(k)`` is called after update k, ``on_loss(k, loss)`` with its loss (as it
    happens, for a live progress display). Returns the loss of every step.
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
            batch = {
                k: v.to(policy.device) for k, v in _collate([rows[i] for i in queue.pop()], pad_id).items()
            }
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, steps, lr, warmup_fraction)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
                loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            if on_loss is not None:
                on_loss(step + 1, losses[-1])
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


def converge_examples(policy: Policy, recipe: Recipe) -> list[SFTExample]:
    """The second phase's pool: fresh gold solutions of the base difficulty, ``harder_fraction``
    of the pool of the harder kind and each of ``recipe.mixes`` its share, shuffled."""
    kinds = [(recipe.harder_fraction, recipe.harder()), *recipe.mix_options()]
    rest = 1.0 - sum(share for share, _ in kinds)
    if not all(0.0 <= share < 1.0 for share, _ in kinds) or rest <= 0.0:
        raise ValueError(
            f"harder_fraction and the mixes' shares must be in [0, 1) and sum below 1, got {kinds}"
        )
    easy = load_task("arith", recipe.options())
    n_easy = recipe.converge_problems
    examples = ift_examples(policy, easy, easy.sample(n_easy, "train", seed=recipe.data_seed + 3))
    for k, (share, options) in enumerate(kinds):
        n = round(n_easy * share / rest)
        if n:
            task = load_task("arith", options)
            examples += ift_examples(policy, task, task.sample(n, "train", seed=recipe.data_seed + 4 + k))
    random.Random(f"{recipe.seed}:converge-order").shuffle(examples)
    return examples


def train_base(
    recipe: Recipe,
    *,
    progress: ProgressFn | None = None,
    on_step: Callable[[Policy, int], None] | None = None,
) -> Policy:
    """Build the base model of ``recipe`` from its seed (CPU, fp32 weights). Not cached.

    A two-phase recipe continues its first phase's model, built and cached first.
    ``on_step(policy, k)`` is called after update k of the last phase (e.g. a measurement)."""
    if recipe.converge_steps:
        policy = load_default("cpu", "float32", recipe=recipe.first_phase(), progress=progress)
        examples = converge_examples(policy, recipe)
        steps, batch_size, lr, seed = (
            recipe.converge_steps,
            recipe.converge_batch_size,
            recipe.converge_lr,
            recipe.seed + 1,
        )
    else:
        model, tokenizer = build_model(recipe)
        policy = finish_policy(
            model, tokenizer, DEFAULT_SPEC, torch.device("cpu"), torch.float32, seed=recipe.seed
        )
        # A pool of at most max_pool examples; training repeats it in new orders (epochs).
        examples = base_examples(policy, recipe, min(recipe.steps * recipe.batch_size, recipe.max_pool))
        steps, batch_size, lr, seed = recipe.steps, recipe.batch_size, recipe.lr, recipe.seed
    trained = policy
    train_examples(
        trained,
        examples,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        warmup_fraction=recipe.warmup_fraction,
        weight_decay=recipe.weight_decay,
        bf16=recipe.bf16,
        progress=progress,
        on_step=None if on_step is None else (lambda k: on_step(trained, k)),
    )
    return trained


def _stderr(message: str) -> None:
    print(f"presrm default model: {message}", file=sys.stderr, flush=True)


def ensure_default(recipe: Recipe | None = None, *, progress: ProgressFn | None = _stderr) -> Path:
    """The cached base model's directory, training and saving it first if it is missing.

    Written to a temporary directory and renamed, so a killed build leaves nothing half
    written and two processes building at once both end up with one complete copy.
    """
    # Looked up at call time (not as a default argument), so tests can swap the recipe.
    recipe = recipe or DEFAULT_RECIPE
    found = built_dir(recipe)
    if found is not None:
        return found
    target = default_dir(recipe)
    if progress is not None:
        progress(f"training the embedded default model once (cached in {target}); this takes a few minutes")
    started = time.time()
    policy = train_base(recipe, progress=progress)
    save_base(policy, recipe, target)
    if progress is not None:
        progress(f"done in {time.time() - started:.0f}s")
    return target


def save_base(policy: Policy, recipe: Recipe, target: Path, **meta: Any) -> Path:
    """Save a base model with its ``recipe.json`` (plus ``meta``) as ``target``, atomically:
    written to a temporary directory and renamed, so a killed build leaves nothing half written
    and two processes building at once both end up with one complete copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        save_checkpoint(policy, tmp)
        record = {"format": RECIPE_FORMAT, "key": recipe.key(), **asdict(recipe), **meta}
        (tmp / "recipe.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not (target / COMPLETE_MARKER).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_default(
    device: str = "auto",
    dtype: str = "auto",
    *,
    recipe: Recipe | None = None,
    progress: ProgressFn | None = _stderr,
) -> Policy:
    """The embedded default model (M0) of ``recipe``, built and cached on first use."""
    resolve_dtype(dtype, resolve_device(device))  # fail on a bad device/dtype before training
    path = ensure_default(recipe, progress=progress)
    try:
        policy = load_checkpoint(path, device=device, dtype=dtype)
    except ModelError as exc:
        raise ModelError(unreadable_message(path, exc)) from exc
    policy.spec = DEFAULT_SPEC
    return policy


def ensure_model(spec: str) -> None:
    """Build the embedded default model if ``spec`` names it and it is not cached yet."""
    if spec.strip() == DEFAULT_SPEC:
        ensure_default()
