"""What every TRL-based trainer here shares: arguments, metric logging, quiet output, a guard."""

from __future__ import annotations

import random
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from presrm.errors import ModelError
from presrm.model.policy import Policy
from presrm.trackers import trl_report_args

LogFn = Callable[[int, dict[str, float]], None]
IGNORE_INDEX = -100


def eos_token_id(policy: Policy) -> int:
    """The tokenizer's EOS id (a text that ends is trained to end with it)."""
    eos = policy.tokenizer.eos_token_id
    if eos is None:
        raise ModelError(f"model {policy.spec!r}: its tokenizer has no EOS token, so answers cannot be ended")
    return int(eos)


def common_args(
    policy: Policy,
    *,
    output_dir: str,
    lr: float,
    epochs: int,
    batch_size: int,
    seed: int,
    gradient_checkpointing: bool = False,
) -> dict[str, Any]:
    """TrainingArguments fields every presrm trainer sets (SFTConfig and DPOConfig take them all)."""
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
    return {
        "output_dir": output_dir,
        "learning_rate": lr,
        "num_train_epochs": epochs,
        "per_device_train_batch_size": batch_size,
        "seed": seed,
        "data_seed": seed,
        "logging_strategy": "steps",
        "logging_steps": 1,
        "save_strategy": "no",
        # The trackers of the stage this trainer runs in (presrm.trackers), else "none".
        **trl_report_args(),
        "disable_tqdm": True,
        # TRL's base config defaults to bf16 and gradient checkpointing. The model's own dtype says
        # what precision to train in: bf16 autocast for a bf16 model (LoRA weights stay float32,
        # as peft keeps them), none for a float32 one. Under DeepSpeed
        # (examples/accelerate/ds_zero2.yaml) transformers requires this flag to match the
        # engine's precision config, which is bf16 there for a bf16 model too.
        "bf16": _model_dtype(policy) == torch.bfloat16,
        "fp16": False,  # fp16 autocast needs float32 master weights a float16 model has not got
        "activation_checkpointing": gradient_checkpointing,  # (formerly gradient_checkpointing)
        # Non-reentrant: works with frozen inputs (LoRA) without forcing input grads.
        "activation_checkpointing_kwargs": {"use_reentrant": False} if gradient_checkpointing else None,
        # Without this, a machine with a GPU would move a CPU policy onto it.
        "use_cpu": policy.device.type == "cpu",
        "dataloader_num_workers": 0,
        # Data parallel (presrm/run/distributed.py): every trainable parameter takes part in the loss,
        # so DDP need not search the graph for unused ones on every step.
        "ddp_find_unused_parameters": False,
        "max_length": None,  # presrm's sequences are short; never cut a step or a verdict
    }


def _model_dtype(policy: Policy) -> torch.dtype:
    """The dtype of the model's (base) weights; LoRA adapter weights may differ."""
    params = [p for n, p in policy.model.named_parameters() if "lora_" not in n]
    return params[0].dtype if params else next(policy.model.parameters()).dtype


class MetricsCallback(TrainerCallback):
    """Collects every log line (one per optimizer step) and forwards it to ``log``."""

    def __init__(self, log: LogFn | None) -> None:
        self.log = log
        self.records: list[dict[str, float]] = []

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        metrics = {
            k: float(v)
            for k, v in (logs or {}).items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        step = int(state.global_step)
        self.records.append({"step": float(step), **metrics})
        if self.log is not None:
            self.log(step, metrics)


def quiet(trainer: Any) -> None:
    """Drop the callbacks that print every log dict to stdout (``MetricsCallback`` reports them)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)


def _base_model(model: Any) -> Any:
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@contextmanager
def trainer_guard(policy: Policy) -> Iterator[None]:
    """Undo TRL's side effects on the caller's world once training ends (or fails).

    ``Trainer`` reseeds the global ``random`` / numpy / torch generators; TRL patches a fused
    LM head onto the model instance (each trainer wraps it once more); the model is left in
    train mode. The trained weights are of course kept.
    """
    py_state, np_state = random.getstate(), np.random.get_state()
    torch_state = torch.random.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    base = _base_model(policy.model)
    had_forward = "forward" in vars(base)
    old_forward = vars(base).get("forward")
    padding_side = policy.tokenizer.padding_side
    try:
        with warnings.catch_warnings():
            # TRL calls transformers' deprecated is_gradient_checkpointing on every step.
            warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
            yield
    finally:
        policy.tokenizer.padding_side = padding_side  # generation pads on the left
        if had_forward:
            base.forward = old_forward
        elif "forward" in vars(base):
            del base.forward  # back to the class's forward
        policy.model.eval()
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.random.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
