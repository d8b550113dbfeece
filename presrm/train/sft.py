"""Supervised fine-tuning (the IFT + EFT warm-up) with TRL's ``SFTTrainer``.

The examples are tokenized here, not by TRL, for two reasons: (1) the prompt / completion
split must be the one generation uses (``presrm.model.generation``: a raw prompt gets BOS, a chat
prompt none, the continuation is encoded on its own and appended), so training sees the same
token boundaries as the search; (2) EOS must follow only the completions that end a text
(``SFTExample.eos``), while ``SFTTrainer`` appends EOS to every completion it tokenizes.
A pre-tokenized dataset with ``input_ids`` and ``labels`` (-100 on the prompt) is taken by
``SFTTrainer`` as is, so the loss is on the completion (and its EOS) only.

What it shares with the step-DPO trainer is in presrm.train.trl_support.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

from transformers import TrainerCallback

from presrm.config import SFTConfig
from presrm.model.encoding import encode_continuations, encode_prompts
from presrm.model.policy import Policy
from presrm.train.examples import SFTExample
from presrm.train.trl_support import (
    IGNORE_INDEX,
    LogFn,
    MetricsCallback,
    common_args,
    eos_token_id,
    quiet,
    trainer_guard,
)

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def tokenize_sft(policy: Policy, examples: Sequence[SFTExample]) -> list[dict[str, list[int]]]:
    """``input_ids`` and ``labels`` (prompt positions -100) exactly as the trainer receives them."""
    if not examples:
        return []
    eos = eos_token_id(policy)
    prompts = encode_prompts(policy, [e.prompt for e in examples])
    completions = encode_continuations(policy, [e.completion for e in examples])
    rows = []
    for ex, p_ids, c_ids in zip(examples, prompts, completions, strict=True):
        c_ids = c_ids + [eos] if ex.eos else c_ids
        if not c_ids:
            raise ValueError(f"SFT example with an empty completion and no EOS: {ex.prompt[-60:]!r}")
        rows.append({"input_ids": p_ids + c_ids, "labels": [IGNORE_INDEX] * len(p_ids) + c_ids})
    return rows


def train_sft(
    policy: Policy,
    examples: Sequence[SFTExample],
    config: SFTConfig,
    *,
    seed: int,
    log: LogFn | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> list[dict[str, float]]:
    """Fine-tune ``policy.model`` in place on ``examples`` (loss on completions only).

    Works for a fully trainable model and for a PEFT LoRA model (only the adapter trains).
    Returns one record per log line: ``{"step", "loss", "grad_norm", "learning_rate", …}``
    and a last one with TRL's run summary (``train_loss``, ``train_runtime``, …). No examples:
    nothing is trained and ``[]`` comes back. ``callbacks``: extra ``TrainerCallback``s.
    """
    from datasets import Dataset
    from trl import SFTConfig as TRLSFTConfig
    from trl import SFTTrainer

    rows = tokenize_sft(policy, examples)
    if not rows:
        return []
    callback = MetricsCallback(log)
    with tempfile.TemporaryDirectory(prefix="presrm-sft-") as tmp, trainer_guard(policy):
        args = TRLSFTConfig(
            **common_args(
                policy,
                output_dir=tmp,
                lr=config.lr,
                epochs=config.epochs,
                batch_size=config.batch_size,
                seed=seed,
                gradient_checkpointing=config.gradient_checkpointing,
            ),
            completion_only_loss=True,  # labels already mask the prompt; say so explicitly
            packing=False,
            dataset_num_proc=None,
        )
        trainer = SFTTrainer(
            model=policy.model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=policy.tokenizer,
            callbacks=[callback, *callbacks],
        )
        quiet(trainer)
        trainer.train()
    return callback.records
