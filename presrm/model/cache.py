"""Where presrm caches what it builds: the default model, dequantized GGUF files."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Where dequantized GGUF models are cached (``PRESRM_CACHE`` overrides)."""
    env = os.environ.get("PRESRM_CACHE")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("presrm"))
