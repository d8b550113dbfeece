"""presrm: process-based self-rewarding language models, with every step-level score in DuckDB."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

__version__ = "0.1.0"

_CHECKOUT_TUI = Path(__file__).resolve().parent.parent / "tui"


class CheckoutTuiFinder(importlib.abc.MetaPathFinder):
    """Import ``presrm.tui`` from a checkout's ``tui/`` folder, as an install maps it.

    The Textual app lives at the repository root (the project's layout), and setuptools installs
    it as ``presrm.tui``; this finder, consulted last, gives a checkout that has not been
    installed (``python cli.py inspect …``) the same name.
    """

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "presrm.tui" or not (_CHECKOUT_TUI / "__init__.py").is_file():
            return None
        return importlib.util.spec_from_file_location(
            fullname, _CHECKOUT_TUI / "__init__.py", submodule_search_locations=[str(_CHECKOUT_TUI)]
        )


if not any(isinstance(f, CheckoutTuiFinder) for f in sys.meta_path):
    sys.meta_path.append(CheckoutTuiFinder())
