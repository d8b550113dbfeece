"""The embedded default model's recipe and cache location, and loading it once built.

The recipe (shape, data, optimiser, seed) is hashed into the cache directory's name, so the same
recipe always gives the same directory and a changed recipe a new one. Building it is
:mod:`presrm.train.default_recipe`'s job: loading never trains."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from presrm.model.cache import cache_dir

RECIPE_FORMAT = 1  # bump when the training code changes what a recipe produces
DEFAULT_SPEC = "default"


@dataclass(frozen=True)
class Recipe:
    """Everything that determines the base model's weights (hashed into its cache key).

    ``task_options`` is the arith difficulty the model is trained on. ``eft_fraction`` is
    the share of judge examples in the base data (0: the base is a pure solver, as the
    paper's M0). ``steps`` optimizer updates of ``batch_size`` sequences each.

    ``converge_steps`` > 0 adds a second phase that continues the first one's model on fresh
    gold solutions of ``task_options`` with ``harder_fraction`` of them of the harder kind
    (``harder_options`` over ``task_options``), at ``converge_lr``: a base trained to
    convergence on the easier problems that solves the harder ones only sometimes.
    ``mixes`` adds further kinds to that pool, each ``(share of the pool, options over
    task_options)``: e.g. 1-operation questions and start amounts as large as the running
    totals of longer problems, which is what a re-posed rest of a problem asks.
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
    converge_steps: int = 0
    converge_batch_size: int = 32
    converge_lr: float = 5e-4
    converge_problems: int = 14_000  # base-difficulty problems in the second phase's pool
    harder_options: tuple[tuple[str, Any], ...] = (("n_ops", 3),)
    harder_fraction: float = 0.0
    mixes: tuple[tuple[float, tuple[tuple[str, Any], ...]], ...] = ()

    def key(self) -> str:
        """Cache key: a hash of the recipe and the recipe format."""
        fields = asdict(self)
        if not self.mixes:  # recipes without extra mixes keep the key they had before mixes existed
            fields.pop("mixes")
        if not self.converge_steps:  # a one-phase recipe keeps the key it had before phase two existed
            for name in _PHASE_TWO_FIELDS:
                fields.pop(name, None)
        raw = json.dumps({"format": RECIPE_FORMAT, **fields}, sort_keys=True, default=str)
        return hashlib.sha256(raw.encode()).hexdigest()[:12]

    def options(self) -> dict[str, Any]:
        return dict(self.task_options)

    def harder(self) -> dict[str, Any]:
        """The harder task's options: the base difficulty with ``harder_options`` over it."""
        return {**self.options(), **dict(self.harder_options)}

    def mix_options(self) -> list[tuple[float, dict[str, Any]]]:
        """Each extra mix's share of the second phase's pool and its task options."""
        return [(share, {**self.options(), **dict(options)}) for share, options in self.mixes]

    def first_phase(self) -> Recipe:
        """The one-phase recipe whose model the second phase continues."""
        return replace(self, **{name: getattr(Recipe, name) for name in _PHASE_TWO_FIELDS})


_PHASE_TWO_FIELDS = (
    "converge_steps",
    "converge_batch_size",
    "converge_lr",
    "converge_problems",
    "harder_options",
    "harder_fraction",
    "mixes",
)


# Chosen by measurement (README, "The embedded default model"): phase one as before (2-op solutions
# and drills), then 2,000 updates on 2-op solutions whose pool also holds 1- and 2-operation
# questions starting anywhere the running totals of a 5-operation problem reach, and 5 % 3-operation
# ones starting up to 60: so the rest of a problem, re-posed as a fresh question from a step's
# result, falls where the base is strong. No 4- or 5-operation solution is in its data.
_WIDE = 100
DEFAULT_RECIPE = Recipe(
    steps=1500,
    batch_size=16,
    lr=1e-3,
    drill_fraction=0.15,
    drill_facts=16,
    converge_steps=2000,
    harder_fraction=0.05,
    harder_options=(("n_ops", 3), ("max_start", 60)),
    mixes=(
        (0.10, (("n_ops", 1), ("max_start", _WIDE))),
        (0.10, (("max_start", _WIDE),)),
    ),
)


# The run settings benchmarks/measure_default.py uses with the default model. presrm.config owns
# the defaults; these repeat them, so the benchmark's numbers are the defaults' numbers.
RECOMMENDED_CONFIG: dict[str, Any] = {
    "model": DEFAULT_SPEC,
    "task": "arith",
    "task_options": {"n_ops": 2, "max_operand": 20, "ops": "+-"},
    "warmup": {
        "ift_examples": 400,
        "eft_examples": 400,
        "eft_test_examples": 100,
        "lr": 3e-5,
        "epochs": 1,
        "batch_size": 8,
    },
}


# Weights built by presrm.train.ship_default and shipped inside the package: training is not
# bit-reproducible across CPUs (bf16 autocast where the CPU has it, fp32 elsewhere), so a
# shipped copy is what makes every machine start from the same model.
SHIPPED_ROOT = Path(__file__).resolve().parent / "shipped"
COMPLETE_MARKER = "presrm_checkpoint.json"  # written last by presrm.model.checkpoints


def default_dir(recipe: Recipe | None = None) -> Path:
    """Where the base model of ``recipe`` (default: :data:`DEFAULT_RECIPE`) is cached."""
    return cache_dir() / f"default-{(recipe or DEFAULT_RECIPE).key()}"


def shipped_dir(recipe: Recipe | None = None, root: Path | None = None) -> Path:
    """Where the package ships the base model of ``recipe``, if it ships it."""
    return (root or SHIPPED_ROOT) / f"default-{(recipe or DEFAULT_RECIPE).key()}"


def built_dir(recipe: Recipe | None = None) -> Path | None:
    """A complete copy of ``recipe``'s base model: the shipped one first, else the cache's."""
    for path in (shipped_dir(recipe), default_dir(recipe)):
        if (path / COMPLETE_MARKER).is_file():
            return path
    return None


def unreadable_message(path: Path, reason: object) -> str:
    """What to do about a default base copy that does not load: a shipped copy is rebuilt by
    its recipe (deleting it would only fall back to a build); a cached one is deleted."""
    if path.is_relative_to(SHIPPED_ROOT):
        advice = "shipped default model is unreadable; reinstall presrm or rebuild it with python -m presrm.train.ship_default"
    else:
        advice = "cached default model is unreadable; delete the directory"
    return f"{path}: {advice} ({reason})"
