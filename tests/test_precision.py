"""Loading straight into the target dtype, and bf16 training of a bf16 model."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from presrm.config import SFTConfig
from presrm.model.adapters import add_lora
from presrm.model.charvocab import build_char_tokenizer
from presrm.model.loading import load_policy
from presrm.train.examples import SFTExample
from presrm.train.sft import train_sft
from presrm.train.trl_support import common_args

PROBE = textwrap.dedent(
    """
    import json, sys, threading, time
    import torch
    from presrm.model.loading import load_policy

    def anon():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no RssAnon")

    peak, done = [0], []
    def sample():
        while not done:
            peak[0] = max(peak[0], anon())
            time.sleep(0.001)
    base = anon()
    thread = threading.Thread(target=sample)
    thread.start()
    policy = load_policy(sys.argv[1], device="cpu", dtype="bfloat16")
    done.append(1)
    thread.join()
    dtypes = sorted({str(p.dtype) for p in policy.model.parameters()})
    print(json.dumps({"peak": peak[0] - base, "dtypes": dtypes}))
    """
)


def test_a_bf16_checkpoint_loads_straight_into_bf16(tmp_path: Path) -> None:
    """Loading a bf16 model directory as bf16 never holds a float32 copy: the peak extra anonymous
    memory stays below 1.5x the bf16 weights (a float32 load then cast needs over 2x)."""
    tok = build_char_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=512,
        intermediate_size=1408,
        num_hidden_layers=8,
        num_attention_heads=8,
        num_key_value_heads=8,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    bf16_bytes = sum(p.numel() * 2 for p in model.parameters())
    assert bf16_bytes > 40e6  # large enough to stand out from allocator noise
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    del model
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "m")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["dtypes"] == ["torch.bfloat16"]
    assert result["peak"] < 1.5 * bf16_bytes, (result["peak"] / 2**20, bf16_bytes / 2**20)


def test_a_bf16_lora_policy_trains_with_bf16_autocast() -> None:
    """A bf16 model gets bf16=True trainer arguments (a float32 one does not), and SFT of its
    float32 LoRA adapter runs on CPU with finite losses and moves the adapter."""
    fp32 = load_policy("tiny", dtype="float32")
    assert common_args(fp32, output_dir="x", lr=1e-3, epochs=1, batch_size=2, seed=0)["bf16"] is False
    policy = add_lora(load_policy("tiny", dtype="bfloat16"))
    args = common_args(policy, output_dir="x", lr=1e-3, epochs=1, batch_size=2, seed=0)
    assert args["bf16"] is True and args["activation_checkpointing"] is False
    before = {n: p.detach().clone() for n, p in policy.model.named_parameters() if "lora_B" in n}
    examples = [SFTExample(f"Question: {i} + 1?\n", f"Step 1: {i} + 1 = {i + 1}\n") for i in range(6)]
    records = train_sft(
        policy, examples, SFTConfig(lr=1e-2, batch_size=2, gradient_checkpointing=True), seed=0
    )
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses and all(math.isfinite(v) for v in losses)
    after = dict(policy.model.named_parameters())
    assert all(not torch.equal(before[n], after[n].detach()) for n in before)
    assert next(p for n, p in after.items() if "lora_" not in n).dtype == torch.bfloat16
