"""Where a self-rewarding iteration's wall time goes, and PPO update throughput, from a real run.

    python benchmarks/bench_iteration.py                       # default model, 16 problems, PPO
    python benchmarks/bench_iteration.py --model tiny --algo step-dpo
    python benchmarks/bench_iteration.py --run runs/default-cpu.duckdb   # read an existing run

Runs ``presrm run`` in this process (M0 eval skipped from the shares; no warm-up unless
``--warmup``), then reads what the loop stored: each stage's wall time and, in
``stages.detail``, the seconds spent sampling, judging, training and logging (writing the
trace store). Printed per self-rewarding iteration: the share of its wall time in each part
and the rest ("other": data building, checkpoints, metrics). For PPO: response tokens per
second of update time (``tokens`` logged per update / training seconds); the baseline that
PPO's cost is compared with (plain forward+backward of the same tokens) is
``bench_ppo.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from presrm.config import validate_config
from presrm.store.reader import query_rows

PARTS = ("sampling", "judging", "training", "logging")


def run(args: argparse.Namespace, out: Path) -> Path:
    from presrm.run.start import start_run

    cfg = validate_config(
        {
            "model": args.model,
            "task": "arith",
            "iterations": args.iterations,
            "problems": args.problems,
            "eval_problems": args.eval_problems,
            "width": args.width,
            "algo": args.algo,
            "out": str(out),
            "eval_search": False,
            "warmup": {"enabled": args.warmup},
        }
    )
    return start_run(cfg)


def report(path: Path) -> int:
    stages = query_rows(path, "SELECT iteration, stage, wall_s, detail FROM stages ORDER BY iteration, stage")
    by_iter: dict[int, list[tuple[str, float, dict]]] = {}
    for it, stage, wall, detail in stages:
        by_iter.setdefault(int(it), []).append((stage, float(wall), json.loads(detail or "{}")))
    print(f"run {path}\n")
    print("| iteration | stages | wall | " + " | ".join(PARTS) + " | other |")
    print("|---|---|---|" + "---|" * (len(PARTS) + 1))
    for it, rows in sorted(by_iter.items()):
        if not any(stage in ("search", "train") for stage, _, _ in rows):
            continue  # M0 eval / warm-up: not a self-rewarding iteration
        wall = sum(w for _, w, _ in rows)
        parts = {p: sum(float(d.get(f"{p}_s", 0.0)) for _, _, d in rows) for p in PARTS}
        other = wall - sum(parts.values())
        cells = " | ".join(f"{parts[p]:.1f}s ({parts[p] / wall:.0%})" for p in PARTS)
        names = "+".join(stage for stage, _, _ in rows)
        print(f"| M{it} | {names} | {wall:.1f}s | {cells} | {other:.1f}s ({other / wall:.0%}) |")
    ppo = query_rows(
        path,
        """
        SELECT t.iteration, sum(t.value) AS tokens, count(DISTINCT t.step) AS updates,
               any_value(json_extract(s.detail, '$.training_s')::DOUBLE) AS training_s
        FROM train_steps t JOIN stages s ON s.iteration = t.iteration AND s.stage = 'train'
        WHERE t.stage = 'ppo' AND t.metric = 'tokens' GROUP BY t.iteration ORDER BY t.iteration""",
    )
    for it, tokens, updates, training_s in ppo:
        if training_s:
            print(
                f"\nPPO M{it}: {int(tokens):,} response tokens in {int(updates)} updates, "
                f"{tokens / training_s:,.0f} tokens/s of update time ({training_s:.1f}s)"
            )
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, help="report an existing run file instead of running one")
    ap.add_argument("--model", default="default")
    ap.add_argument("--algo", choices=("ppo", "step-dpo"), default="ppo")
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--eval-problems", type=int, default=16)
    ap.add_argument("--width", type=int, default=6)
    ap.add_argument("--warmup", action="store_true", help="run the IFT + EFT warm-up first")
    args = ap.parse_args(argv)
    if args.run is not None:
        if not args.run.is_file():
            print(f"bench_iteration: {args.run}: no such run file", file=sys.stderr)
            return 2
        return report(args.run)
    with tempfile.TemporaryDirectory(prefix="presrm-bench-") as tmp:
        return report(run(args, Path(tmp) / "bench.duckdb"))


if __name__ == "__main__":
    raise SystemExit(main())
