"""Third-party noise off for ``presrm run``: library progress bars, warnings and log lines.

presrm draws its own progress and stage lines (presrm.run.console); the libraries under it
(transformers, TRL, accelerate, datasets, peft, gguf) would add bars such as "Loading weights"
and deprecation warnings that carry nothing for the user. ``presrm run --verbose`` keeps them.
Call :func:`quiet_third_party` before those libraries are imported: several read their
settings from the environment once, at import.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings

# Read at import by each library: its progress bars and its log level.
_ENV = {
    "TQDM_DISABLE": "1",  # every plain tqdm bar, e.g. GGUF's de-quantizing one
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' bars follow this switch
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
}

# Libraries that log through the standard logging module without setting a level of their own.
_LOGGERS = ("accelerate", "trl", "peft", "torch", "gguf", "huggingface_hub", "reasoning_gym", "math_verify")


def quiet_third_party(verbose: bool = False) -> None:
    """Silence other libraries' bars, warnings and log lines (all of them kept when ``verbose``)."""
    if verbose:
        return
    for name, value in _ENV.items():
        os.environ.setdefault(name, value)
    # Warnings raised from presrm's own code stay visible; the rest are other libraries' business.
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"presrm(\.|$)")
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # transformers may already be loaded (a test, a caller's import): then its switches apply now.
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
