"""Throughput of batched step generation against generating each candidate alone.

    .venv/bin/python benchmarks/bench_generation.py [--model smollm2|tiny|default|PATH] [--width 6]

``generate_steps`` encodes each prefix once, runs one prefill, copies the KV cache per candidate
and decodes all candidates of all prefixes in one batch. The naive baseline generates every
candidate alone (batch 1) with its prefix re-encoded and re-prefilled, through the same decode
loop. Both run in the same process, interleaved round by round, because this machine's speed
swings: only the ratio within one run means anything.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from presrm.model.generation import StepSample, generate_steps
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.steps import render_prefix, step_header
from presrm.train.default_recipe import ensure_model

QUESTIONS = [
    ("Tom has 3 apples and buys 4 more. Then he gives away 2. How many apples does he have?", []),
    ("What is 12 * 7 + 15?", ["Step 1: 12 * 7 = 84"]),
    ("A box holds 24 pencils. How many pencils are in 5 boxes?", []),
    (
        "Sara reads 15 pages a day for 6 days, then 20 pages. How many pages in total?",
        ["Step 1: 15 * 6 = 90"],
    ),
]


@dataclass
class Tally:
    tokens: int = 0
    candidates: int = 0
    seconds: float = 0.0

    def add(self, samples: list[list[StepSample]], seconds: float) -> None:
        self.tokens += sum(s.n_tokens for row in samples for s in row)
        self.candidates += sum(len(row) for row in samples)
        self.seconds += seconds

    @property
    def tok_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0


def prefixes_for(policy: Policy, count: int) -> list[str]:
    out = []
    for question, steps in QUESTIONS[:count]:
        out.append(render_prefix(policy.solution_prompt(question), steps) + step_header(len(steps) + 1))
    return out


def timed(fn: Callable[[int], list[list[StepSample]]], seed: int) -> tuple[list[list[StepSample]], float]:
    start = time.perf_counter()
    result = fn(seed)
    return result, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--width", type=int, default=6, help="candidates per prefix (w)")
    ap.add_argument("--prefixes", type=int, default=3, choices=range(1, len(QUESTIONS) + 1))
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    ensure_model(args.model)
    policy = load_policy(args.model, device=args.device, dtype=args.dtype)
    load_s = time.perf_counter() - t0
    prefixes = prefixes_for(policy, args.prefixes)
    w, kw = args.width, {"temperature": args.temperature, "max_new_tokens": args.max_new_tokens}
    dtype = next(policy.model.parameters()).dtype
    print(
        f"model={args.model} params={policy.num_parameters() / 1e6:.1f}M dtype={dtype} device={policy.device} "
        f"threads={torch.get_num_threads()} load={load_s:.1f}s prefixes={len(prefixes)} w={w} "
        f"max_new_tokens={args.max_new_tokens} temperature={args.temperature}",
        flush=True,
    )
    generate_steps(policy, prefixes[:1], 1, seed=0, max_new_tokens=2)  # warm-up (newline table, allocator)

    def naive(seed: int) -> list[list[StepSample]]:
        # Every candidate alone: its prefix is re-encoded and re-prefilled each time.
        return [
            [generate_steps(policy, [p], 1, seed=seed + k, **kw)[0][0] for k in range(w)] for p in prefixes
        ]

    methods: dict[str, Callable[[int], list[list[StepSample]]]] = {
        "batched (drop finished)": lambda seed: generate_steps(policy, prefixes, w, seed=seed, **kw),
        "batched (keep finished)": lambda seed: generate_steps(
            policy, prefixes, w, seed=seed, drop_finished=False, **kw
        ),
        "naive batch 1": naive,
    }
    tallies = {name: Tally() for name in methods}
    names = list(methods)
    for r in range(args.rounds):
        # Rotate the order each round so that a drift in machine speed hits every method alike.
        for name in names[r % len(names) :] + names[: r % len(names)]:
            res, dt = timed(methods[name], 1000 * r)
            tallies[name].add(res, dt)
        print(
            f"round {r + 1}/{args.rounds}: "
            + ", ".join(f"{k} {v.tok_s:.1f} tok/s" for k, v in tallies.items()),
            flush=True,
        )

    base = tallies["naive batch 1"]
    print()
    print(f"{'method':<26}{'candidates':>11}{'tokens':>8}{'seconds':>9}{'tok/s':>9}{'s/cand':>8}{'ratio':>7}")
    for name, t in tallies.items():
        ratio = t.tok_s / base.tok_s if base.tok_s else float("nan")
        print(
            f"{name:<26}{t.candidates:>11}{t.tokens:>8}{t.seconds:>9.2f}{t.tok_s:>9.1f}"
            f"{t.seconds / max(t.candidates, 1):>8.3f}{ratio:>6.2f}x"
        )
    best = tallies["batched (drop finished)"]
    print(
        f"\nspeed-up of generate_steps over naive (tokens/s, same run): {best.tok_s / base.tok_s:.2f}x (target >= 3x)"
    )


if __name__ == "__main__":
    main()
