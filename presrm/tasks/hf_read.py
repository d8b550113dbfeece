"""Rows of a dataset on disk, each with where it came from (file and row), read offline.

Sources, tried in order for ``PATH``:

1. a ``datasets.save_to_disk`` folder (a ``Dataset`` or a ``DatasetDict``);
2. a Parquet, Arrow or JSONL file, or a folder of them (searched recursively);
3. a dataset in the local Hugging Face hub cache: ``owner/name`` or ``owner/name/subfolder``
   (nothing is downloaded; ``HF_HUB_CACHE`` / ``HF_HOME`` say where the cache is).

A split picks a ``DatasetDict`` split, or, in a folder of files, the files whose name starts
with the split (``train-00000-of-00001.parquet``, ``test.jsonl``) or that lie in a folder named
after it. Rows are numbered from 0 (``row 3`` is ``dataset[3]``), JSONL lines from 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from presrm.errors import TaskError
from presrm.tasks.base import json_object

FILE_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".json")
Row = tuple[str, dict[str, Any]]  # (where, row)


def _is_saved_dataset(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _saved_rows(folder: Path, split: str | None) -> Iterator[Row]:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as exc:  # corrupt or foreign folder: say which and why, on one line
        raise TaskError(f"{folder}: cannot load the saved dataset ({type(exc).__name__}: {exc})") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        chosen = split or ("train" if "train" in names else names[0] if len(names) == 1 else None)
        if chosen is None or chosen not in names:
            what = f"has no split {split!r}" if split else "has several splits; name one as hf:PATH:SPLIT"
            raise TaskError(f"{folder}: the saved dataset {what} (splits: {', '.join(names)})")
        dataset, label = loaded[chosen], f"{folder} (split {chosen})"
    else:
        if split:
            raise TaskError(f"{folder}: the saved dataset has no splits; drop ':{split}'")
        dataset, label = loaded, str(folder)
    for i, row in enumerate(dataset.to_list()):
        yield f"{label}: row {i}", row


def _matches_split(file: Path, root: Path, split: str) -> bool:
    parts = file.relative_to(root).parts
    name = parts[-1]
    return split in parts[:-1] or name.startswith((f"{split}-", f"{split}.", f"{split}_"))


def _files(root: Path, split: str | None) -> list[Path]:
    if root.is_file():
        if split:
            raise TaskError(f"{root}: a split selects files in a folder; {root.name} is one file")
        return [root]
    found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in FILE_SUFFIXES)
    found = [p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    if not found:
        raise TaskError(f"{root}: no Parquet, Arrow or JSONL files in the folder")
    if split:
        chosen = [p for p in found if _matches_split(p, root, split)]
        if not chosen:
            raise TaskError(
                f"{root}: no files of split {split!r} (files: {', '.join(p.name for p in found)})"
            )
        return chosen
    train = [p for p in found if _matches_split(p, root, "train")]
    return train or found  # a folder with split-named files: the train files by default


def _arrow_table(file: Path) -> Any:
    import pyarrow as pa

    try:
        with pa.memory_map(str(file)) as source:
            return pa.ipc.open_stream(source).read_all()  # what datasets writes
    except pa.ArrowInvalid:
        with pa.memory_map(str(file)) as source:
            return pa.ipc.open_file(source).read_all()


def _file_rows(file: Path) -> Iterator[Row]:
    if file.suffix in (".jsonl", ".json"):
        try:
            lines = file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise TaskError(f"{file}: cannot read ({exc})") from None
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{file}:{lineno}"
            yield where, json_object(line, where)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(str(file)) if file.suffix == ".parquet" else _arrow_table(file)
    except (OSError, pa.ArrowException) as exc:
        raise TaskError(f"{file}: cannot read ({type(exc).__name__}: {exc})") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{file}: row {i}", row


def _hub_snapshot(spec: str) -> Path | None:
    """The local snapshot folder of hub dataset ``owner/name[/subfolder]``, or None."""
    parts = spec.strip("/").split("/")
    if len(parts) < 2 or any(not p or p in (".", "..") for p in parts):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = snapshot_download("/".join(parts[:2]), repo_type="dataset", local_files_only=True)
    except (LocalEntryNotFoundError, ValueError, OSError):
        return None
    return Path(folder, *parts[2:])


def read_rows(path: str, split: str | None) -> tuple[str, list[Row]]:
    """(a label of the source, its rows) for ``hf:PATH[:SPLIT]``."""
    local = Path(path).expanduser()
    if not local.exists():
        snapshot = _hub_snapshot(path)
        if snapshot is None or not snapshot.exists():
            raise TaskError(
                f"hf:{path}: no such file or folder, and no dataset {path!r} in the local "
                "Hugging Face cache (presrm never downloads; fetch it first, e.g. huggingface-cli download "
                f"--repo-type dataset {'/'.join(path.split('/')[:2])})"
            )
        local = snapshot
    if local.is_dir() and _is_saved_dataset(local):
        return str(local), list(_saved_rows(local, split))
    rows = [row for file in _files(local, split) for row in _file_rows(file)]
    if not rows:
        raise TaskError(f"{local}: the dataset has no rows")
    return str(local), rows
