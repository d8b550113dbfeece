"""User-facing errors.

Anything a user can cause (bad config, missing file, wrong database) raises a
:class:`PresrmError`; the CLI prints its message on one line and exits with
status 2 instead of showing a traceback.
"""

from __future__ import annotations


class PresrmError(Exception):
    """An error caused by user input; its message is shown as-is, on one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ConfigError(PresrmError):
    """A run configuration key is unknown, missing or has the wrong type."""


class StoreError(PresrmError):
    """A run database cannot be opened or is not a presrm database of this version."""


class TaskError(PresrmError):
    """A task spec or a task data file is invalid (names the file and line)."""


class ModelError(PresrmError):
    """A model cannot be loaded (missing path, corrupt file, missing package)."""


class Interrupted(PresrmError):
    """Ctrl-C: the run stopped at a safe point (the message says how to resume)."""


class RunBusyError(PresrmError):
    """Another process is running or resuming this run (it holds the run's lock)."""
