"""Throughput of presrm's step generation against Hugging Face ``generate(num_return_sequences=w)``.

    .venv/bin/python benchmarks/bench_generation.py [--model default|smollm2|tiny|PATH] [--width 6]

``generate_steps`` encodes each prefix once, runs one prefill, copies the KV cache per candidate
and decodes all candidates of all prefixes in one batch, stopping each at the end of its step.
The baseline is what a user would write: one ``model.generate`` call over the same prefixes
(left-padded, the same token ids), ``do_sample`` at the same temperature and top-p,
``num_return_sequences=w``, stopped per row at the first token containing a newline (a
``StoppingCriteria`` over the same newline-token table) or EOS; its tokens are counted up to
and including that token, as presrm counts them. Equal outputs: both are run greedy once
(w = 1) and their step texts compared. Methods run interleaved, their order rotated each round,
because this machine's speed swings: only the ratio within one run means anything.
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
from transformers import StoppingCriteria, StoppingCriteriaList

from presrm.model.encoding import encode_prompts, left_pad
from presrm.model.generation import (
    StepSample,
    _eos_ids,
    eval_mode,
    generate_steps,
    pad_token_id,
)
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.model.sampling import newline_token_mask
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


class StopAtNewline(StoppingCriteria):
    """Per row: done once the last token contains a newline (or is EOS)."""

    def __init__(self, stop_tokens: torch.Tensor) -> None:
        self.stop_tokens = stop_tokens

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
        return self.stop_tokens[input_ids[:, -1]]


def hf_generate(
    policy: Policy, prefixes: list[str], w: int, seed: int, temperature: float, max_new_tokens: int
) -> list[list[StepSample]]:
    """The baseline: one ``model.generate`` over all prefixes, ``num_return_sequences=w``."""
    tok, model = policy.tokenizer, policy.model
    ids, mask = left_pad(encode_prompts(policy, prefixes), pad_token_id(policy), policy.device)
    vocab = model.get_output_embeddings().weight.shape[0]
    stop_tokens = newline_token_mask(tok, vocab).clone().to(policy.device)
    eos = sorted(_eos_ids(policy))
    for e in eos:
        stop_tokens[e] = True
    torch.manual_seed(seed)
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": 0.95, "top_k": 0} if temperature else {}
    )
    with eval_mode(model), torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max_new_tokens,
            num_return_sequences=w,
            stopping_criteria=StoppingCriteriaList([StopAtNewline(stop_tokens)]),
            pad_token_id=pad_token_id(policy),
            eos_token_id=eos or None,
            **({"do_sample": False} if not temperature else sampling),
        )
    new = out[:, ids.shape[1] :].tolist()
    stops = stop_tokens.tolist()
    rows: list[StepSample] = []
    for seq in new:
        end = next((k + 1 for k, t in enumerate(seq) if stops[t]), len(seq))
        text = tok.decode(seq[:end], skip_special_tokens=True).split("\n", 1)[0]
        rows.append(StepSample(text, tuple(seq[:end]), end, 0.0, ""))
    return [rows[p * w : (p + 1) * w] for p in range(len(prefixes))]


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

    temp, mnt = args.temperature, args.max_new_tokens
    methods: dict[str, Callable[[int], list[list[StepSample]]]] = {
        "presrm generate_steps": lambda seed: generate_steps(policy, prefixes, w, seed=seed, **kw),
        "HF generate (n_return=w)": lambda seed: hf_generate(policy, prefixes, w, seed, temp, mnt),
    }
    greedy_ours = generate_steps(policy, prefixes, 1, temperature=0.0, max_new_tokens=mnt)
    greedy_hf = hf_generate(policy, prefixes, 1, 0, 0.0, mnt)
    same = sum(a[0].text == b[0].text for a, b in zip(greedy_ours, greedy_hf, strict=True))
    print(f"greedy step texts equal (presrm vs HF): {same}/{len(prefixes)}", flush=True)
    hf_generate(policy, prefixes[:1], 1, 0, temp, 2)  # warm-up of generate's own setup
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

    base = tallies["HF generate (n_return=w)"]
    print()
    print(f"{'method':<26}{'candidates':>11}{'tokens':>8}{'seconds':>9}{'tok/s':>9}{'s/cand':>8}{'ratio':>7}")
    for name, t in tallies.items():
        ratio = t.tok_s / base.tok_s if base.tok_s else float("nan")
        print(
            f"{name:<26}{t.candidates:>11}{t.tokens:>8}{t.seconds:>9.2f}{t.tok_s:>9.1f}"
            f"{t.seconds / max(t.candidates, 1):>8.3f}{ratio:>6.2f}x"
        )
    best = tallies["presrm generate_steps"]
    print(
        f"\nspeed-up of generate_steps over HF generate (tokens/s, same run): {best.tok_s / base.tok_s:.2f}x"
        " (target >= 1.5x)"
    )


if __name__ == "__main__":
    main()
