"""User-written EFT (judge-training) examples from JSONL, and the train/test split of judge pairs."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from presrm.errors import TaskError
from presrm.judge_format import VERDICT_TOKENS
from presrm.steps import step_content
from presrm.train.examples import JudgePair

_REQUIRED = ("question", "previous_steps", "step_a", "step_b", "verdict")
_OPTIONAL = ("check", "reason", "problem_id", "id", "source")  # source: provenance of exported flags


def _text_field(row: dict[str, Any], key: str, where: str) -> str:
    value = row[key]
    if not isinstance(value, str) or not value.strip():
        raise TaskError(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value.strip()


def _optional_text(row: dict[str, Any], key: str, where: str) -> str | None:
    value = row.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise TaskError(f"{where}: '{key}' must be a string or null, got {value!r}")
    return value.strip() or None


def _parse_pair(line: str, where: str, default_id: str) -> JudgePair:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise TaskError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(row, dict):
        raise TaskError(f"{where}: expected a JSON object, got {type(row).__name__}")
    missing = [k for k in _REQUIRED if k not in row]
    if missing:
        raise TaskError(f"{where}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(row) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise TaskError(
            f"{where}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(_REQUIRED + _OPTIONAL)}"
        )
    question = _text_field(row, "question", where)
    steps = row["previous_steps"]
    if not isinstance(steps, list) or not all(isinstance(s, str) for s in steps):
        raise TaskError(f"{where}: 'previous_steps' must be a list of strings, got {steps!r}")
    step_a, step_b = _text_field(row, "step_a", where), _text_field(row, "step_b", where)
    if step_content(step_a) == step_content(step_b):
        raise TaskError(f"{where}: step_a and step_b are the same step")
    verdict = row["verdict"]
    if verdict not in VERDICT_TOKENS:
        raise TaskError(f'{where}: \'verdict\' must be "A" or "B", got {verdict!r}')
    check = _optional_text(row, "check", where) or _optional_text(row, "reason", where)
    problem_id = _optional_text(row, "problem_id", where) or _optional_text(row, "id", where) or default_id
    return JudgePair(problem_id, question, tuple(steps), step_a, step_b, verdict, check)


def load_eft_jsonl(path: str | Path) -> list[JudgePair]:
    """Judge pairs from a JSONL file, one object per line (blank lines are skipped).

    Fields: ``question``, ``previous_steps`` (list of full step texts), ``step_a``,
    ``step_b``, ``verdict`` ("A"/"B"); optional ``check`` (or ``reason``), the text the judge
    writes before its verdict, and ``problem_id`` (or ``id``). Pairs without an id are grouped
    by question for the train/test split. Every mistake names ``PATH:LINE``.
    """
    file = Path(path).expanduser()
    try:
        lines = file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TaskError(f"{file}: EFT file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{file}: cannot read EFT file ({exc})") from None
    pairs = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{file}:{lineno}"
        pair = _parse_pair(line, where, default_id="")
        if not pair.problem_id:
            # Same question, same group: the held-out split must not share questions with train.
            digest = hashlib.blake2b(pair.question.encode("utf-8"), digest_size=6).hexdigest()
            pair = replace(pair, problem_id=f"eft-{digest}")
        pairs.append(pair)
    if not pairs:
        raise TaskError(f"{file}: EFT file has no pairs")
    return pairs


def eft_train_test_split(
    pairs: Sequence[JudgePair], n_test: int, rng: random.Random
) -> tuple[list[JudgePair], list[JudgePair]]:
    """Hold out ``n_test`` pairs whose problems never appear in the train part.

    Whole problems (all their pairs) go to the test side in a random order until it has
    ``n_test`` pairs; the pairs of the last problem that do not fit are dropped rather than
    leaked into train. With too few problems the test side gets what it can, and at least
    one problem stays on the train side.
    """
    if n_test <= 0:
        return list(pairs), []
    groups: dict[str, list[JudgePair]] = {}
    for pair in pairs:
        groups.setdefault(pair.problem_id, []).append(pair)
    ids = list(groups)
    rng.shuffle(ids)
    test: list[JudgePair] = []
    train: list[JudgePair] = []
    for i, pid in enumerate(ids):
        room = n_test - len(test)
        if room > 0 and i < len(ids) - 1:  # the last problem always stays in train
            test.extend(groups[pid][:room])
        else:
            train.extend(groups[pid])
    return train, test
