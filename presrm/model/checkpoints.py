"""presrm checkpoints: a model directory with the policy's prompt format and adapter state."""

from __future__ import annotations

import json
from pathlib import Path

from safetensors import SafetensorError

from presrm import __version__
from presrm.errors import StoreError
from presrm.model.policy import Policy

CHECKPOINT_FILE = "presrm_checkpoint.json"
CHECKPOINT_FORMAT = 1


def save_checkpoint(policy: Policy, directory: str | Path) -> Path:
    """Save the adapter (LoRA) or the full weights, the tokenizer and ``presrm_checkpoint.json``."""
    out = Path(directory).expanduser().resolve()
    try:
        return _write_checkpoint(policy, out)
    except (OSError, SafetensorError) as exc:  # disk full, file too large, read-only directory
        if isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror + (f" ({exc.filename})" if exc.filename else "")
        else:  # safetensors: "Error while serializing: I/O error: File too large (os error 27)"
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise StoreError(f"cannot write the checkpoint {out}: {reason}") from None


def _write_checkpoint(policy: Policy, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    lora = policy.is_lora
    policy.model.save_pretrained(str(out))
    policy.tokenizer.save_pretrained(str(out))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "kind": "lora" if lora else "full",
        "spec": policy.spec,
        # For adapters: what rebuilds the frozen base weights.
        "base_spec": policy.base_spec if lora else str(out),
        "seed": policy.seed,
        "dtype": str(next(policy.model.parameters()).dtype).removeprefix("torch."),
        "chat": policy.chat,
        "presrm_version": __version__,
    }
    (out / CHECKPOINT_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return out
