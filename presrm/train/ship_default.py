"""Build the embedded default model by its recipe and write it into the package.

    python -m presrm.train.ship_default            # writes presrm/model/shipped/default-<key>/

Training is not bit-reproducible across CPUs (bf16 autocast runs only where the CPU has bf16
instructions), so the repository ships the weights one build produced: every machine then starts
from the same model, and the quick start skips the build. ``recipe.json`` beside the weights holds
the recipe, its key, this command, the weights' SHA-256 and what the build ran on. Older shipped
copies (other recipe keys) are removed: only the current recipe's weights ship.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from presrm.model.checkpoints import CHECKPOINT_FILE
from presrm.model.default import DEFAULT_RECIPE, DEFAULT_SPEC, SHIPPED_ROOT, Recipe, shipped_dir
from presrm.model.policy import Policy
from presrm.train.default_recipe import ProgressFn, _cpu_has_bf16, _stderr, save_base, train_base

REBUILD_COMMAND = "python -m presrm.train.ship_default"
WEIGHTS_FILE = "model.safetensors"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ship(
    recipe: Recipe | None = None,
    *,
    root: Path | None = None,
    progress: ProgressFn | None = _stderr,
    on_step: Callable[[Policy, int], None] | None = None,
) -> Path:
    """Train ``recipe`` (default: the default recipe) and write it as the shipped copy under ``root``
    (``on_step``: see :func:`presrm.train.default_recipe.train_base`)."""
    recipe = recipe or DEFAULT_RECIPE
    root = root or SHIPPED_ROOT
    started = time.time()
    policy = train_base(recipe, progress=progress, on_step=on_step)
    target = shipped_dir(recipe, root)
    if target.exists():
        shutil.rmtree(target)
    save_base(
        policy,
        recipe,
        target,
        rebuild=REBUILD_COMMAND,
        built_on={
            "torch": torch.__version__,
            "machine": platform.machine(),
            "bf16_autocast": bool(recipe.bf16 and _cpu_has_bf16()),
            "seconds": round(time.time() - started),
        },
    )
    # The hash of what was written, stored beside it (the checkpoint itself is already complete).
    record_path = target / "recipe.json"
    record = json.loads(record_path.read_text())
    record["weights_sha256"] = file_sha256(target / WEIGHTS_FILE)
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    # A full checkpoint names itself as its base: the spec, not this machine's build directory.
    meta_path = target / CHECKPOINT_FILE
    meta = json.loads(meta_path.read_text())
    meta["base_spec"] = DEFAULT_SPEC
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    for other in root.glob("default-*"):
        if other != target and other.is_dir():
            shutil.rmtree(other)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=SHIPPED_ROOT, help="where shipped models live")
    args = parser.parse_args(argv)
    path = ship(root=args.root)
    print(path, file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
