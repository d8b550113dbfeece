"""Batched step generation with a shared prefix.

:func:`generate_steps` encodes each distinct prefix once, runs one prefill over them, copies
the KV cache ``n`` times (one row per candidate) and decodes all rows together with its own
temperature/top-p sampler, stopping each row where its :class:`StopRule` says (by default the
policy's step format: the first newline for one-line steps, a blank line or the next step
header for multi-line ones; the judge stops after its verdict), at EOS or at ``max_new_tokens``. Once half the rows have finished they are dropped from the batch, so
that a few long candidates do not drag a full batch along (dropping each row as soon as it
finished is slower on CPU: every drop copies the KV cache, while a decode step costs about the
same at 9 or 18 rows). One-line steps decode in :mod:`presrm.model.device_decode`, which keeps
the loop's bookkeeping on the device; rules that must read the text decode per token here.

Prompts and continuations are tokenized by presrm.model.encoding, the same split training uses.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from presrm.model.device_decode import (
    Decoded,
    DecodeState,
    continue_batch,
    decode_exact,
    default_sync_every,
)
from presrm.model.encoding import encode_prompts, left_pad, position_ids
from presrm.model.policy import Policy
from presrm.model.sampling import sample_next, trigger_token_mask
from presrm.steps import STEP_END, StepFormat

FINISH_NEWLINE = "newline"
FINISH_BOUNDARY = "boundary"  # a multi-line step ended at a blank line or the next step header
FINISH_STOP = "stop"  # another stop rule ended the text (the judge's closing "]]")
FINISH_EOS = "eos"
FINISH_LENGTH = "length"


@dataclass(frozen=True)
class StopRule:
    """Where a generated text ends.

    ``end(text)`` gives the length of the text to keep (None: not ended yet); it is asked only
    when a row's new token contains one of ``triggers`` (a table per tokenizer says which
    tokens do). ``exact``: every such token ends the text, so nothing needs decoding (the
    one-line rule). ``finish`` is the label a row stopped by this rule gets.
    """

    end: Callable[[str], int | None]
    triggers: str
    finish: str
    exact: bool = False


NEWLINE_STOP = StopRule(lambda text: StepFormat("line").step_end(text), STEP_END, FINISH_NEWLINE, exact=True)


def step_stop(fmt: StepFormat) -> StopRule:
    """The stop rule of a step format: a newline, or a blank line / the next "Step k:" header."""
    if not fmt.multiline:
        return NEWLINE_STOP
    # A blank line completes at a newline, a header at its ':' / '.' / ')'.
    return StopRule(fmt.step_end, "\n:.)", FINISH_BOUNDARY)


@dataclass(frozen=True)
class StepSample:
    """One generated candidate step.

    ``text``: the generated text after the prefix, cut before the first newline.
    ``token_ids``: every sampled token, including the one that ended the step (the token that
    contains the newline, or EOS); ``n_tokens == len(token_ids)``.
    ``logprob``: sum over ``token_ids`` of the model's log-probabilities *before* temperature and
    top-p (the policy's own likelihood, the quantity PPO/DPO use), not the sampler's.
    ``finish``: ``"newline"``, ``"eos"`` or ``"length"`` (hit ``max_new_tokens``).
    """

    text: str
    token_ids: tuple[int, ...]
    n_tokens: int
    logprob: float
    finish: str


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Generation and scoring are done in eval mode (no dropout), then the mode is restored."""
    was_training = bool(model.training)
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


def cache_kwarg(model: Any) -> str:
    """transformers 5.x renames ``past_key_values`` to ``cache`` (old name removed in 5.40)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def base_config(model: Any) -> Any:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.config


def prefill(policy: Policy, rows: list[list[int]]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """Run left-padded token rows through the model once: (their KV cache, the last position's
    float logits [B, V], the attention mask [B, L])."""
    model = policy.model
    input_ids, mask = left_pad(rows, pad_token_id(policy), policy.device)
    cache = DynamicCache(config=base_config(model))
    out = model(
        input_ids=input_ids,
        attention_mask=mask,
        position_ids=position_ids(mask),
        use_cache=True,
        logits_to_keep=1,
        **{cache_kwarg(model): cache},
    )
    return cache, out.logits[:, -1, :].float(), mask


def pad_token_id(policy: Policy) -> int:
    tok = policy.tokenizer
    pid = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return int(pid if pid is not None else 0)


def _eos_ids(policy: Policy) -> set[int]:
    ids: set[int] = set()
    if policy.tokenizer.eos_token_id is not None:
        ids.add(int(policy.tokenizer.eos_token_id))
    gen_cfg = getattr(policy.model, "generation_config", None)
    eos = getattr(gen_cfg, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(e) for e in eos)
    return ids


def generate_steps(
    policy: Policy,
    prefixes: list[str],
    n: int,
    *,
    temperature: float = 0.5,
    top_p: float = 0.95,
    max_new_tokens: int = 64,
    seed: int | None = None,
    max_rows: int = 64,
    drop_finished: bool = True,
    stop: StopRule | None = None,
) -> list[list[StepSample]]:
    """For each prefix, ``n`` candidate continuations up to where ``stop`` ends them (default:
    the end of the step in the policy's step format).

    ``temperature`` 0 is greedy (the ``n`` samples are then identical). ``seed`` makes sampling
    deterministic on a given device. Prefixes are processed in chunks of at most ``max_rows``
    candidate rows (memory bound for the KV cache). ``drop_finished`` removes rows that ended
    their step from the batch whenever they make up half of it (finished rows otherwise keep
    decoding, their tokens ignored).
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    if not prefixes:
        return []
    rule = stop if stop is not None else step_stop(policy.step_format)
    if seed is None:
        seed = random.SystemRandom().randrange(2**63)
    generator = torch.Generator(device=policy.device)
    generator.manual_seed(seed)

    distinct = list(dict.fromkeys(prefixes))  # identical prefixes share one prefill
    rows = 1 if temperature <= 0.0 else n  # greedy: decode once, copy the sample n times
    per_chunk = max(1, max_rows // rows)
    results: dict[str, list[StepSample]] = {}
    with eval_mode(policy.model), torch.inference_mode():
        for start in range(0, len(distinct), per_chunk):
            chunk = distinct[start : start + per_chunk]
            samples = _generate_chunk(
                policy, chunk, rows, temperature, top_p, max_new_tokens, generator, drop_finished, rule
            )
            results.update(zip(chunk, samples, strict=True))
    return [list(results[p]) * (n // rows) for p in prefixes]


def _generate_chunk(
    policy: Policy,
    prefixes: list[str],
    n: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    generator: torch.Generator,
    drop_finished: bool,
    rule: StopRule,
) -> list[list[StepSample]]:
    model, device = policy.model, policy.device
    rows = encode_prompts(policy, prefixes)
    if any(not r for r in rows):
        raise ValueError("generate_steps: a prefix encodes to no tokens")
    # One prefill over the distinct prefixes; the cache is updated in place by every forward call below.
    cache, logits, mask = prefill(policy, rows)
    cache_kw = cache_kwarg(model)
    vocab = logits.shape[-1]
    trigger = trigger_token_mask(policy.tokenizer, vocab, rule.triggers).to(device)
    eos = torch.zeros(vocab, dtype=torch.bool, device=device)
    for e in _eos_ids(policy):
        if 0 <= e < vocab:
            eos[e] = True

    # Copy the prefix cache once per candidate: rows p*n .. p*n+n-1 belong to prefix p.
    cache.batch_repeat_interleave(n)
    logits = logits.repeat_interleave(n, dim=0)
    mask = mask.repeat_interleave(n, dim=0)
    next_pos = position_ids(mask)[:, -1] + 1

    state = DecodeState(logits, mask, next_pos, cache)

    def forward(tokens: torch.Tensor, st: DecodeState) -> torch.Tensor:
        return _forward_one(model, cache_kw, tokens, st)

    if rule.exact:
        return _exact_samples(
            policy,
            decode_exact(
                forward,
                state,
                lambda step_logits: sample_next(step_logits, temperature, top_p, generator),
                trigger | eos,
                eos,
                max_new_tokens,
                drop_finished=drop_finished,
                sync_every=default_sync_every(device),
            ),
            rule,
            len(prefixes),
            n,
        )
    # A trigger token may or may not end the text: each one is decoded and the rule asked, on the host.
    total = len(prefixes) * n
    active = torch.arange(total, device=device)  # original row index of each batch row
    tokens: list[list[int]] = [[] for _ in range(total)]
    logps: list[float] = [0.0] * total
    token_lps: list[list[float]] = [[] for _ in range(total)]
    finish: list[str] = [FINISH_LENGTH] * total

    alive = torch.ones(total, dtype=torch.bool, device=device)  # rows still writing their step
    for step in range(max_new_tokens):
        logprobs = torch.log_softmax(state.logits, dim=-1)
        chosen = sample_next(state.logits, temperature, top_p, generator)
        chosen_lp = logprobs.gather(-1, chosen.unsqueeze(-1)).squeeze(-1)
        stop_eos = eos[chosen]
        triggered = trigger[chosen] & alive
        done = (triggered | stop_eos) & alive
        not_ended: list[int] = []
        for i, (row, tok, lp, is_eos, is_done, is_alive) in enumerate(
            zip(
                active.tolist(),
                chosen.tolist(),
                chosen_lp.tolist(),
                stop_eos.tolist(),
                done.tolist(),
                alive.tolist(),
                strict=True,
            )
        ):
            if not is_alive:
                continue
            tokens[row].append(tok)
            token_lps[row].append(lp)
            logps[row] += lp
            # A trigger token only may end the text: ask the rule about the decoded text.
            text_goes_on = is_done and not is_eos
            if (
                text_goes_on
                and rule.end(policy.tokenizer.decode(tokens[row], skip_special_tokens=True)) is None
            ):
                not_ended.append(i)
                continue
            if is_done:
                finish[row] = FINISH_EOS if is_eos else rule.finish
        if not_ended:
            done[torch.tensor(not_ended, device=device)] = False
        if step == max_new_tokens - 1:
            break
        batch = continue_batch(forward, state, active, chosen, alive & ~done, drop_finished)
        if batch is None:
            break
        active, alive = batch

    samples: list[StepSample] = []
    for row in range(total):
        text = policy.tokenizer.decode(tokens[row], skip_special_tokens=True)
        end = rule.end(text)
        ids, lps = tokens[row], token_lps[row]
        if end is not None and finish[row] == rule.finish:
            text = text[:end]
            # Tokens past the one that reached the boundary (e.g. the next step's "Step 3:")
            # belong to no step: drop them and their log-probs.
            keep = _tokens_covering(policy, ids, end)
            ids, lps = ids[:keep], lps[:keep]
        samples.append(StepSample(text, tuple(ids), len(ids), float(sum(lps)), finish[row]))
    return [samples[p * n : (p + 1) * n] for p in range(len(prefixes))]


def _forward_one(model: Any, cache_kw: str, tokens: torch.Tensor, state: DecodeState) -> torch.Tensor:
    """One decode step of the model over the batch's new tokens; returns the next float logits."""
    out = model(
        input_ids=tokens.unsqueeze(-1),
        attention_mask=state.mask,
        position_ids=state.next_pos.unsqueeze(-1),
        use_cache=True,
        **{cache_kw: state.cache},
    )
    return out.logits[:, -1, :].float()


def _exact_samples(
    policy: Policy, decoded: Decoded, rule: StopRule, n_prefixes: int, n: int
) -> list[list[StepSample]]:
    """Steps of an exact rule: every trigger token ended its row, so the text ends at the trigger."""
    samples: list[StepSample] = []
    for ids, lps, ended, by_eos in zip(
        decoded.tokens, decoded.logprobs, decoded.ended, decoded.by_eos, strict=True
    ):
        text = policy.tokenizer.decode(ids, skip_special_tokens=True)
        text = text.split(rule.triggers, 1)[0] if len(rule.triggers) == 1 else text
        finish = FINISH_EOS if by_eos else rule.finish if ended else FINISH_LENGTH
        samples.append(StepSample(text, tuple(ids), len(ids), float(sum(lps)), finish))
    return [samples[p * n : (p + 1) * n] for p in range(n_prefixes)]


def _tokens_covering(policy: Policy, ids: list[int], end: int) -> int:
    """The fewest leading tokens whose text reaches past ``end`` characters (the token that
    holds the boundary's first character included), at least one."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if len(policy.tokenizer.decode(ids[:mid], skip_special_tokens=True)) > end:
            hi = mid
        else:
            lo = mid + 1
    return lo
