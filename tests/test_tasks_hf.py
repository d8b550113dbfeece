"""Datasets on disk (hf:PATH[:SPLIT]): Parquet, Arrow, JSONL, save_to_disk folders, the local hub
cache; field and answer-form options; malformed rows named by file and row."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from presrm.errors import TaskError
from presrm.tasks import load_task
from presrm.tasks.hf import HfTask, split_spec

ROWS = [
    {
        "question": f"Tom has {a} apples and buys {b} more. How many?",
        "answer": f"{a} + {b} = {a + b}\n#### {a + b}",
    }
    for a in range(1, 9)
    for b in range(1, 6)
]


def _parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_parquet_file_gives_problems_with_steps_and_a_hash_split(tmp_path: Path) -> None:
    task = load_task(f"hf:{_parquet(tmp_path / 'g.parquet', ROWS)}")
    train, held_out = task.sample(1000, "train", seed=0), task.sample(1000, "eval", seed=0)
    assert len(train) + len(held_out) == len(ROWS) and held_out and train
    assert not {p.question for p in train} & {p.question for p in held_out}
    p = next(x for x in train + held_out if x.question.startswith("Tom has 3 apples and buys 4"))
    assert p.answer == "7" and p.steps == ("3 + 4 = 7", "The answer is 7.")
    assert task.check_answer(p, "7.0") is True and task.check_answer(p, "8") is False
    assert not task.has_step_checker and task.check_step(p, [], "Step 1: 3 + 4 = 7") is None
    assert [x.problem_id for x in task.sample(5, "train", seed=3)] == [
        x.problem_id for x in task.sample(5, "train", seed=3)
    ]


def test_save_to_disk_folder_with_splits_and_eval_split(tmp_path: Path) -> None:
    folder = tmp_path / "saved"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS[:30]), "test": datasets.Dataset.from_list(ROWS[30:])}
    ).save_to_disk(str(folder))
    task = load_task(f"hf:{folder}:train", {"eval_split": "test"})
    assert (
        len(task.sample(100, "train", seed=0)) == 30
        and len(task.sample(100, "eval", seed=0)) == len(ROWS) - 30
    )
    assert len(load_task(f"hf:{folder}").sample(100, "train", seed=0)) < 30  # train split, hashed
    with pytest.raises(TaskError, match=r"has no split 'dev' \(splits: train, test\)"):
        load_task(f"hf:{folder}:dev")
    single = tmp_path / "single"
    datasets.Dataset.from_list(ROWS).save_to_disk(str(single))
    assert len(load_task(f"hf:{single}").all_problems()) == len(ROWS)


def test_fields_and_answer_forms(tmp_path: Path) -> None:
    math_rows = [
        {
            "problem": "What is $\\frac{1}{2} + \\frac{1}{4}$?",
            "solution": "Add.\nWe get $\\boxed{\\frac{3}{4}}$.",
        },
        {"problem": "What is 2 + 2?", "solution": "It is $\\boxed{4}$."},
    ]
    file = tmp_path / "math.jsonl"
    file.write_text("".join(json.dumps(r) + "\n" for r in math_rows * 3))
    task = load_task(
        f"hf:{file}", {"question_field": "problem", "answer_field": "solution", "answer_form": "boxed"}
    )
    problems = task.all_problems()
    assert len(problems) == 2  # repeated questions are kept once
    frac = next(p for p in problems if "frac" in p.question)
    assert frac.answer == "\\frac{3}{4}" and frac.steps[-1] == "The answer is \\frac{3}{4}."
    assert task.check_answer(frac, "0.75") is True and task.check_answer(frac, "3/5") is False
    plain = _parquet(tmp_path / "plain.parquet", [{"q": f"{i} squared?", "a": i * i} for i in range(10)])
    task = load_task(f"hf:{plain}", {"question_field": "q", "answer_field": "a", "answer_form": "plain"})
    p = next(x for x in task.all_problems() if x.question == "3 squared?")
    assert p.answer == "9" and p.steps == ("The answer is 9.",)


def test_folder_of_files_picks_the_split(tmp_path: Path) -> None:
    _parquet(tmp_path / "d" / "data" / "train-00000-of-00001.parquet", ROWS[:20])
    _parquet(tmp_path / "d" / "data" / "test-00000-of-00001.parquet", ROWS[20:])
    assert len(load_task(f"hf:{tmp_path / 'd'}").all_problems()) == 20
    assert len(load_task(f"hf:{tmp_path / 'd'}:test").all_problems()) == len(ROWS) - 20
    with pytest.raises(TaskError, match="no files of split 'dev'"):
        load_task(f"hf:{tmp_path / 'd'}:dev")


def test_local_hub_cache_is_read_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "hub"
    repo = cache / "datasets--someone--tiny-math"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    _parquet(repo / "snapshots" / commit / "main" / "train-00000-of-00001.parquet", ROWS)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    task = load_task("hf:someone/tiny-math/main:train")
    assert len(task.all_problems()) == len(ROWS)
    with pytest.raises(TaskError, match="no dataset 'someone/other' in the local Hugging Face cache"):
        load_task("hf:someone/other")


def test_malformed_rows_name_their_file_and_row(tmp_path: Path) -> None:
    bad = [*ROWS[:5], {"question": "Q?", "answer": "no final line"}]
    file = _parquet(tmp_path / "bad.parquet", bad)
    with pytest.raises(TaskError) as err:
        load_task(f"hf:{file}")
    assert (
        str(err.value) == f"{file}: row 5: 'answer' has no '#### <final answer>' line (answer_form = 'gsm8k')"
    )
    file = _parquet(tmp_path / "fields.parquet", [{"prompt": "Q?", "answer": "#### 1"}])
    with pytest.raises(
        TaskError, match=r"fields.parquet: row 0: missing field 'question' \(fields: prompt, answer\)"
    ):
        load_task(f"hf:{file}")
    jsonl = tmp_path / "x.jsonl"
    jsonl.write_text(json.dumps(ROWS[0]) + "\n{oops\n")
    with pytest.raises(TaskError, match=r"x.jsonl:2: invalid JSON"):
        load_task(f"hf:{jsonl}")
    with pytest.raises(TaskError, match="no such file or folder"):
        load_task(f"hf:{tmp_path / 'missing.parquet'}")
    with pytest.raises(TaskError, match="hf option 'answer_form' must be one of gsm8k, boxed, plain"):
        HfTask(str(jsonl), {"answer_form": "latex"})
    with pytest.raises(TaskError, match="hf option 'question' is unknown"):
        HfTask(str(jsonl), {"question": "q"})


def test_split_spec() -> None:
    assert split_spec("data/x.parquet") == ("data/x.parquet", None)
    assert split_spec("openai/gsm8k/main:test") == ("openai/gsm8k/main", "test")
    assert split_spec("C:/data") == ("C:/data", None)
