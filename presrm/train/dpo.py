"""Step-wise DPO (the paper's trainer) with TRL's ``DPOTrainer``.

A pair is one search expansion: the prompt is the question, the accepted steps and the next
``"Step k:"`` header; chosen and rejected are what the model wrote after that header (the
best and the worst candidate). The loss is
``-log σ(β·[log πθ(chosen|prompt) − log πref(chosen|prompt)] − β·[same for rejected])``.

Why the data is tokenized here: ``DPOTrainer`` appends EOS to every chosen/rejected text, but a
step that is not the last is followed by the next step, not by the end of the text, so EOS
there would teach the model to stop mid-solution. Each continuation is therefore encoded like
generation encodes it (``presrm.model.generation``), ends with the step separator (``"\\n"``, or the blank line of
multi-line steps: what ended it during sampling), and only a final step gets the real EOS after that newline.
``_PretokenizedDPOTrainer`` takes these ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids`` as is.

Reference model = the policy as it is when training starts (iterative DPO: M_t is the
reference of iteration t). Full fine-tuning: a frozen copy is passed as ``ref_model``. LoRA:
``ref_model=None``; TRL 1.16 then copies the ``default`` adapter into a frozen adapter named
``"ref"`` and uses it as the reference (so a trained adapter continuing from M1 is its own
reference, not the base model); that copy is deleted here once training ends.
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from transformers import TrainerCallback

from presrm.config import StepDPOConfig
from presrm.model.encoding import encode_continuations, encode_prompts
from presrm.model.policy import Policy
from presrm.train.examples import StepPair
from presrm.train.trl_support import LogFn, MetricsCallback, common_args, eos_token_id, quiet, trainer_guard

REF_ADAPTER = "ref"  # the adapter name TRL's DPOTrainer looks for


def _step_ids(policy: Policy, text: str, final: bool, eos: int) -> list[int]:
    sep = policy.step_format.separator
    ids = encode_continuations(policy, [text if text.endswith(sep) else text + sep])[0]
    return ids + [eos] if final else ids


def tokenize_step_pairs(policy: Policy, pairs: Sequence[StepPair]) -> list[dict[str, list[int]]]:
    """``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``, exactly what ``DPOTrainer`` is fed."""
    if not pairs:
        return []
    eos = eos_token_id(policy)
    prompts = encode_prompts(policy, [p.prompt for p in pairs])
    rows = []
    for pair, prompt_ids in zip(pairs, prompts, strict=True):
        if pair.chosen.strip() == pair.rejected.strip():
            raise ValueError(f"step pair with identical chosen and rejected step: {pair.chosen!r}")
        rejected_final = pair.is_final if pair.rejected_final is None else pair.rejected_final
        rows.append(
            {
                "prompt_ids": prompt_ids,
                "chosen_ids": _step_ids(policy, pair.chosen, pair.is_final, eos),
                "rejected_ids": _step_ids(policy, pair.rejected, rejected_final, eos),
            }
        )
    return rows


def _pretokenized_trainer_class() -> type:
    from trl import DPOTrainer

    class _PretokenizedDPOTrainer(DPOTrainer):
        """A DPOTrainer that trains on the ids it is given (no EOS appended, no re-tokenizing)."""

        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, dataset_name: str) -> Any:
            return dataset

    return _PretokenizedDPOTrainer


@contextmanager
def _reference(policy: Policy) -> Iterator[Any]:
    """The ``ref_model`` to pass to DPOTrainer: the policy as it is now (see module docstring)."""
    model = policy.model
    if not policy.is_lora:
        ref = copy.deepcopy(model).eval()
        ref.requires_grad_(False)
        yield ref
        return
    if REF_ADAPTER in model.peft_config:
        raise ValueError(
            f"the model already has an adapter named {REF_ADAPTER!r}; presrm needs that name free"
        )
    active = model.active_adapter
    try:
        yield None  # TRL copies the active adapter into a frozen "ref" adapter
    finally:
        # ...and leaves it there: it would be saved with every checkpoint and break the next run.
        if REF_ADAPTER in model.peft_config:
            model.delete_adapter(REF_ADAPTER)
        model.set_adapter(active)


def train_step_dpo(
    policy: Policy,
    pairs: Sequence[StepPair],
    config: StepDPOConfig,
    *,
    seed: int,
    log: LogFn | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> list[dict[str, float]]:
    """Step-wise DPO on ``pairs``; trains ``policy.model`` in place (the adapter, for LoRA).

    ``config.sft_weight`` > 0 adds that weight of the chosen steps' NLL to the DPO loss (RPO; TRL's
    ``loss_type=["sigmoid", "sft"]``), which keeps DPO from lowering the chosen steps too.

    Returns one record per log line (``loss``, ``rewards/margins``, ``rewards/accuracies``,
    ``logps/chosen`` …, then TRL's run summary). No pairs: nothing is trained, ``[]``.
    ``callbacks``: extra ``TrainerCallback``s.
    """
    from datasets import Dataset
    from trl import DPOConfig

    rows = tokenize_step_pairs(policy, pairs)
    if not rows:
        return []
    callback = MetricsCallback(log)
    trainer_cls = _pretokenized_trainer_class()
    with (
        tempfile.TemporaryDirectory(prefix="presrm-dpo-") as tmp,
        trainer_guard(policy),
        _reference(policy) as ref_model,
    ):
        args = DPOConfig(
            **common_args(
                policy,
                output_dir=tmp,
                lr=config.lr,
                epochs=config.epochs,
                batch_size=config.batch_size,
                seed=seed,
                gradient_checkpointing=config.gradient_checkpointing,
            ),
            beta=config.beta,
            loss_type=["sigmoid", "sft"] if config.sft_weight > 0 else ["sigmoid"],
            loss_weights=[1.0, config.sft_weight] if config.sft_weight > 0 else None,
            precompute_ref_log_probs=False,
            dataset_num_proc=None,
        )
        trainer = trainer_cls(
            model=policy.model,
            ref_model=ref_model,
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=policy.tokenizer,
            callbacks=[callback, *callbacks],
        )
        quiet(trainer)
        trainer.train()
    return callback.records
