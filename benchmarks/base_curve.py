"""Build the default base model by its recipe and measure greedy accuracy per level during its last phase.

    python benchmarks/base_curve.py --out curve.json [--every 500] [--root DIR]

The levels are the ones a re-posing curriculum needs: 1- and 2-operation questions whose start
amount reaches the running totals of longer problems (``max_start``), and the standard 2-, 3- and
4-operation problems. Each measurement is greedy step-by-step decoding of held-out problems
(seed 12345) with a Wilson 95 % interval; the JSON holds one row per measurement. ``--root``
receives the built model as a shipped copy (default: a temporary directory, nothing shipped).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from presrm.intervals import wilson_interval
from presrm.model.default import DEFAULT_RECIPE
from presrm.model.policy import Policy
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.tasks import load_task
from presrm.train.ship_default import ship

BASE = {"max_operand": 20, "ops": "+-"}
LEVELS: dict[str, tuple[dict[str, Any], int]] = {
    "1-op wide": ({**BASE, "n_ops": 1, "max_start": 100}, 200),
    "2-op wide": ({**BASE, "n_ops": 2, "max_start": 100}, 200),
    "2-op": ({**BASE, "n_ops": 2}, 300),
    "3-op": ({**BASE, "n_ops": 3}, 300),
    "4-op": ({**BASE, "n_ops": 4}, 200),
}


def measure(policy: Policy, step: int, rows: list[dict[str, Any]], out: Path) -> None:
    row: dict[str, Any] = {"updates": step}
    started = time.time()
    for name, (options, n) in LEVELS.items():
        task = load_task("arith", options)
        problems = task.sample(n, "eval", seed=12345)
        settings = SearchSettings(width=1, max_steps=int(options["n_ops"]) + 3, temperature=0.0)
        right = sum(bool(t.correct) for t in search(policy, None, task, problems, settings, LocalIds()))
        ci = wilson_interval(right, n)
        assert ci is not None
        row[name] = [round(100 * ci.estimate, 1), round(100 * ci.low, 1), round(100 * ci.high, 1)]
    row["measure_seconds"] = round(time.time() - started)
    rows.append(row)
    out.write_text(json.dumps(rows, indent=1) + "\n")
    print(" | ".join(f"{k} {v}" for k, v in row.items()), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the curve as JSON")
    parser.add_argument("--every", type=int, default=500, help="measure after every this many updates")
    parser.add_argument("--root", type=Path, help="ship the built model under this directory")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    recipe = DEFAULT_RECIPE
    total = recipe.converge_steps or recipe.steps
    rows: list[dict[str, Any]] = []

    def on_step(policy: Policy, k: int) -> None:
        if k % args.every == 0 or k == total:
            measure(policy, k, rows, args.out)

    root = args.root or Path(tempfile.mkdtemp(prefix="presrm-base-"))
    print(f"recipe {recipe.key()} -> {ship(recipe, root=root, on_step=on_step)}", flush=True)


if __name__ == "__main__":
    main()
