"""Short runs on the task forms beyond arith: rg: and hf: (Parquet and a save_to_disk folder) on the
tiny model, and the rollout EFT source on a task without a step checker storing judge accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from presrm.config import load_config
from presrm.errors import ConfigError, TaskError
from presrm.model.checkpoints import save_checkpoint
from presrm.model.loading import load_policy
from presrm.run.start import start_run
from presrm.store.reader import query_rows
from presrm.tasks import load_task
from presrm.train.default_recipe import train_examples
from presrm.train.eft import ift_examples
from presrm.train.eft_rollouts import held_out_file

TINY_RUN = [
    "model=tiny",
    "problems=2",
    "eval_problems=2",
    "width=2",
    "max_steps=2",
    "iterations=1",
    "eval_search=false",
    "warmup.ift_examples=4",
    "warmup.eft_examples=4",
    "warmup.eft_test_examples=3",
    "warmup.batch_size=4",
    "sampling.max_step_tokens=8",
    "judge.check=false",
    "judge.max_judge_tokens=4",
    "train.finetune=lora",
    "train.dpo.batch_size=2",
]
ADDITIONS = [
    {"question": f"What is {a} + {b}?", "answer": f"{a} + {b} = {a + b}\n#### {a + b}"}
    for a in range(1, 8)
    for b in range(1, 8)
]


def _run(tmp_path: Path, *overrides: str) -> Path:
    cfg = load_config(None, [*TINY_RUN, *overrides, f"out={str(tmp_path / 'run.duckdb')!r}"])
    return start_run(cfg)


def _check_run(path: Path, id_prefix: str, *, has_checker: bool) -> None:
    stages = query_rows(path, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "warmup"), (1, "eval"), (2, "search"), (2, "train"), (2, "eval")]
    problems = query_rows(path, "SELECT split, count(*), min(problem_id) FROM problems GROUP BY 1 ORDER BY 1")
    assert [(s, n) for s, n, _ in problems] == [("eval", 2), ("train", 2)]
    assert all(pid.startswith(id_prefix) for _, _, pid in problems)
    evals = query_rows(path, "SELECT iteration, count(*) FROM evals GROUP BY 1 ORDER BY 1")
    assert evals == [(0, 2), (1, 2), (2, 2)]
    train_judgments = query_rows(path, "SELECT count(*) FROM judgments WHERE phase = 'train'")[0][0]
    assert train_judgments > 0, "the width-2 search judges its candidates"
    checked = query_rows(path, "SELECT count(step_check) FROM nodes WHERE phase IN ('train', 'greedy')")[0][0]
    assert (checked > 0) == has_checker
    eft = query_rows(path, "SELECT count(*) FROM judgments WHERE phase = 'eft_test' AND expected IS NOT NULL")
    assert (eft[0][0] > 0) == has_checker  # held-out judge pairs need a checker (or rollout labels)


def test_short_loop_on_a_reasoning_gym_task(tmp_path: Path) -> None:
    path = _run(
        tmp_path,
        "task='rg:chain_sum'",
        "task_options.min_terms=2",
        "task_options.max_terms=3",
        "task_options.max_digits=1",
    )
    _check_run(path, "rg-chain_sum-", has_checker=True)


@pytest.mark.parametrize("form", ["parquet", "save_to_disk"])
def test_short_loop_on_a_dataset_on_disk(tmp_path: Path, form: str) -> None:
    if form == "parquet":
        target = tmp_path / "data" / "train-00000-of-00001.parquet"
        target.parent.mkdir()
        pq.write_table(pa.Table.from_pylist(ADDITIONS), target)
        spec = f"hf:{target.parent}:train"
    else:
        target = tmp_path / "saved"
        datasets.Dataset.from_list(ADDITIONS).save_to_disk(str(target))
        spec = f"hf:{target}"
    path = _run(tmp_path, f"task={spec!r}")
    _check_run(path, "hf-", has_checker=False)
    questions = {q for (q,) in query_rows(path, "SELECT question FROM problems")}
    assert questions <= {r["question"] for r in ADDITIONS}


def test_a_task_the_model_cannot_write_stops_before_the_run(tmp_path: Path) -> None:
    with pytest.raises(TaskError, match=r"task 'rg:gsm_symbolic': model 'tiny' cannot write .*'€'"):
        _run(tmp_path, "task='rg:gsm_symbolic'")
    assert not (tmp_path / "run.duckdb").exists()


@pytest.fixture(scope="module")
def adder(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny model trained briefly on one-digit additions (it is right some of the time, so
    rollouts split its steps), and the additions as a Parquet file."""
    root = tmp_path_factory.mktemp("adder")
    data = root / "additions.parquet"
    pq.write_table(pa.Table.from_pylist(ADDITIONS), data)
    policy = load_policy("tiny", seed=0)
    task = load_task(f"hf:{data}")
    examples = ift_examples(policy, task, task.all_problems())
    train_examples(policy, examples, steps=200, batch_size=16, lr=3e-3, seed=0, bf16=False, progress=None)
    save_checkpoint(policy, root / "model")
    return root / "model", data


@pytest.mark.slow
def test_rollout_eft_source_gives_held_out_judge_accuracy_without_a_checker(
    tmp_path: Path, adder: tuple[Path, Path]
) -> None:
    model, data = adder
    path = _run(
        tmp_path,
        f"model={str(model)!r}",
        f"task='hf:{data}'",
        "iterations=0",
        "eval_problems=12",
        "width=3",
        "max_steps=3",
        "sampling.temperature=1.0",
        "sampling.max_step_tokens=24",
        "warmup.eft_source='rollouts'",
        "warmup.rollouts=2",
        "warmup.eft_examples=8",
        "warmup.eft_test_examples=8",
    )
    assert not load_task(f"hf:{data}").has_step_checker
    pairs = query_rows(
        path,
        "SELECT iteration, count(*) FROM judgments WHERE phase = 'eft_test' AND expected IN ('A', 'B') "
        "GROUP BY 1 ORDER BY 1",
    )
    assert [i for i, _ in pairs] == [0, 1] and pairs[0][1] == pairs[1][1] > 0  # the same pairs each time
    accuracy = query_rows(
        # The tiny raw LM judges by likelihood (auto), stored under its own name, not the LLM judge's.
        path,
        "SELECT iteration, value FROM eval_metrics WHERE metric = 'likelihood_accuracy' ORDER BY 1",
    )
    assert [i for i, _ in accuracy] == [0, 1] and all(0.0 <= v <= 1.0 for _, v in accuracy)
    texts = query_rows(
        path,
        "SELECT iteration, list(text ORDER BY node_id) FROM nodes WHERE phase = 'eft_test' GROUP BY 1 ORDER BY 1",
    )
    assert texts[0][1] == texts[1][1]
    run_id = query_rows(path, "SELECT run_id FROM runs")[0][0]
    assert held_out_file(path.with_suffix(".ckpt"), run_id).is_file()
    detail = query_rows(path, "SELECT detail FROM stages WHERE stage = 'warmup'")[0][0]
    assert json.loads(detail)["eft_pairs"] > 0  # the warm-up trained the judge on rollout pairs


def test_the_sampled_eft_source_needs_a_step_checker(tmp_path: Path, adder: tuple[Path, Path]) -> None:
    with pytest.raises(ConfigError, match="warmup.eft_source = 'sampled' .* has none; use 'rollouts'"):
        _run(tmp_path, f"task='hf:{adder[1]}'", "warmup.eft_source='sampled'")
    assert not (tmp_path / "run.duckdb").exists()


@pytest.mark.slow
def test_the_sampled_eft_source_trains_the_judge_on_the_policys_own_split_steps(tmp_path: Path) -> None:
    # The embedded default base at a high temperature writes right and wrong 3-op steps.
    path = _run(
        tmp_path,
        "model=default",
        "task_options.n_ops=3",
        "iterations=0",
        "width=4",
        "max_steps=5",
        "sampling.temperature=1.0",
        "sampling.max_step_tokens=24",
        "warmup.eft_source='sampled'",
        "warmup.eft_examples=6",
        "judge.mode='pointwise'",
    )
    detail = json.loads(query_rows(path, "SELECT detail FROM stages WHERE stage = 'warmup'")[0][0])
    assert detail["eft_pairs"] == 6
