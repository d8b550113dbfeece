"""Fixtures shared by the test modules: a tiny in-process policy and the built-in task."""

from __future__ import annotations

import pytest

from presrm.model.loading import load_policy
from presrm.model.policy import Policy
from presrm.tasks import load_task
from presrm.tasks.base import Task


@pytest.fixture(scope="module")
def tiny() -> Policy:
    """A tiny random Llama with the character vocabulary (seed 0), built in-process."""
    return load_policy("tiny", seed=0)


@pytest.fixture(scope="module")
def arith() -> Task:
    return load_task("arith")
