"""presrm export --format trl-stepwise / trl-preference on a real tiny run: the files load with
``datasets``, hold the stored steps with labels from each source, and TRL's DPOTrainer takes one
training step on the preference export."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
from typer.testing import CliRunner

from presrm.cli import app
from presrm.config import load_config
from presrm.errors import PresrmError
from presrm.model.loading import load_policy
from presrm.run.loop import Loop
from presrm.store.flags import add_flag, remove_flags
from presrm.store.reader import query_rows
from presrm.store.trl_export import export_trl
from presrm.store.writer import RunStore
from tests.test_loop import SMALL, longer_step_judge

_PATH_SQL = """
SELECT tree_id, text, self_score, step_check, node_id FROM nodes
WHERE phase = 'train' AND chosen AND NOT rolled_back ORDER BY tree_id, depth
"""


@pytest.fixture(scope="module")
def run_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trl") / "run.duckdb"
    cfg = load_config(None, [*SMALL, "problems=4", "eval_problems=1", f"out={str(out)!r}"])
    Loop(RunStore.create(cfg.out, cfg), judge_factory=longer_step_judge).run()
    return out


def _export(run_file: Path, to: Path, *args: str) -> Any:
    import datasets

    result = CliRunner().invoke(app, ["export", str(run_file), "--to", str(to), *args])
    assert result.exit_code == 0, result.output
    fmt = args[args.index("--format") + 1]
    assert result.output.strip().endswith("rows)")
    return datasets.load_dataset("parquet", data_files=str(to / f"{fmt}.parquet"), split="train")


def _paths(run_file: Path) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for row in query_rows(run_file, _PATH_SQL):
        out.setdefault(row[0], []).append(row)
    return out


def test_stepwise_export_round_trips_with_self_and_checker_labels(run_file: Path, tmp_path: Path) -> None:
    paths = _paths(run_file)
    data = _export(run_file, tmp_path, "--format", "trl-stepwise", "--labels", "self", "--with-rejected")
    assert data.column_names[:3] == ["prompt", "completions", "labels"]
    (n_rejected,) = query_rows(
        run_file, "SELECT count(*) FROM nodes WHERE phase = 'train' AND rejected AND NOT rolled_back"
    )[0]
    assert len(data) == len(paths) + n_rejected  # each path, then one row per rejected sibling
    questions = dict(query_rows(run_file, "SELECT problem_id, question FROM problems"))
    rows = {tuple(row["completions"]): row for row in data}
    for steps in paths.values():
        row = rows.pop(tuple(s[1] for s in steps))  # the path's stored texts, verbatim
        assert row["labels"] == [s[2] is None or s[2] >= 0.5 for s in steps]
        assert row["prompt"] == questions[row["problem_id"]]
    assert {row["labels"][-1] for row in rows.values()} == {False}  # the rejected siblings: scored 0
    checker = _export(run_file, tmp_path / "c", "--format", "trl-stepwise", "--labels", "checker")
    expected = {tuple(s[1] for s in steps): [s[3] for s in steps] for steps in paths.values()}
    assert {tuple(r["completions"]): r["labels"] for r in checker} == expected


def test_flag_labels_take_only_the_flagged_paths(run_file: Path, tmp_path: Path) -> None:
    with pytest.raises(PresrmError, match="no flagged step"):
        export_trl(run_file, tmp_path / "none.parquet", "trl-stepwise", labels="flags")
    steps = _paths(run_file)[2]
    add_flag(run_file, "node", steps[1][4], note="step 2 is wrong")
    try:
        data = _export(run_file, tmp_path, "--format", "trl-stepwise", "--labels", "flags")
    finally:
        remove_flags(run_file, "node", steps[1][4])  # the other tests see the run unflagged
    assert [(r["completions"], r["labels"]) for r in data] == [([s[1] for s in steps], [True, False, True])]


@pytest.mark.slow
def test_preference_export_trains_one_dpo_step(run_file: Path, tmp_path: Path) -> None:
    from trl import DPOConfig, DPOTrainer

    data = _export(run_file, tmp_path, "--format", "trl-preference")
    (n_pairs,) = query_rows(
        run_file,
        "SELECT count(*) FROM nodes c JOIN nodes r ON r.tree_id = c.tree_id AND r.expansion = c.expansion"
        " AND r.rejected WHERE c.phase = 'train' AND c.chosen AND NOT c.rolled_back",
    )[0]
    assert len(data) == n_pairs and set(data.column_names) >= {"prompt", "chosen", "rejected"}
    first = min(data, key=lambda r: len(r["prompt"]))
    assert first["prompt"].startswith("Question: ") and first["chosen"].startswith("Step 1: ")
    policy = load_policy("tiny", seed=0)
    before = [p.detach().clone() for p in policy.model.parameters()]
    args = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        disable_tqdm=True,
    )
    reference = copy.deepcopy(policy.model).eval()  # TRL would load it from a hub id otherwise
    trainer = DPOTrainer(
        model=policy.model,
        ref_model=reference,
        args=args,
        train_dataset=data,
        processing_class=policy.tokenizer,
    )
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, policy.model.parameters(), strict=True))
