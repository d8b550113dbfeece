"""A run's checkpoints are whole or absent: written aside, made durable, then renamed into place.

``save_checkpoint`` writes its files one after another, so a process killed in between
leaves some of them. The loop therefore writes M<k> into ``M<k>.partial/``, fsyncs every
file, writes a manifest of every file and its size last, and renames the directory to
``M<k>``. :func:`is_complete` checks the manifest against the files: a directory torn by a
crash of the machine (the run file says the stage finished, the files never reached the
disk) or by a partial copy is detected, and ``--resume`` redoes the stage instead of loading it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from safetensors import SafetensorError

from presrm import faults
from presrm.errors import StoreError
from presrm.model.checkpoints import CHECKPOINT_FILE, save_checkpoint
from presrm.model.policy import Policy
from presrm.train.value_head import ValueHead, save_value_head

MANIFEST = "presrm_complete.json"  # written last: lists every file of the checkpoint and its size


def save_whole(policy: Policy, value_head: ValueHead | None, directory: Path) -> Path:
    """Save ``policy`` (and PPO's value head) as the checkpoint ``directory``, all or nothing."""
    final = directory.expanduser().resolve()
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what a killed save left behind
    try:
        save_checkpoint(policy, partial)
    except StoreError as err:  # name the checkpoint the user knows, not its scratch directory
        raise StoreError(str(err).replace(str(partial), str(final))) from None
    try:
        if value_head is not None:
            save_value_head(value_head, partial)
        faults.point("checkpoint")
        _write_manifest(partial)
        faults.point("checkpoint")
        # An M<k> already there is from a run killed after its save but before its stage
        # committed: the stage is being redone, and its new checkpoint replaces it.
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        _fsync(final.parent)
    except (OSError, SafetensorError) as err:  # disk full, file too large, read-only directory
        reason = (err.strerror if isinstance(err, OSError) else None) or str(err).strip().splitlines()[0]
        raise StoreError(f"cannot write the checkpoint {final}: {reason}") from None
    return final


def is_complete(directory: Path) -> bool:
    """True when ``directory`` holds a whole checkpoint: every file its manifest lists, at its size.

    A checkpoint written before manifests existed counts as whole when its own metadata file
    (which ``save_checkpoint`` writes last) is there.
    """
    manifest = directory / MANIFEST
    if not manifest.is_file():
        return (directory / CHECKPOINT_FILE).is_file()
    try:
        sizes = json.loads(manifest.read_text())["files"]
        return all((directory / name).stat().st_size == size for name, size in sizes.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _write_manifest(directory: Path) -> None:
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:  # the data reaches the disk before the manifest that vouches for it
        _fsync(path)
    sizes = {str(p.relative_to(directory)): p.stat().st_size for p in files}
    manifest = directory / MANIFEST
    manifest.write_text(json.dumps({"files": sizes}, indent=1) + "\n")
    _fsync(manifest)
    _fsync(directory)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
