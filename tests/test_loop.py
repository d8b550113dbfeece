"""The loop on the tiny model: PPO and step-DPO iterations train, resume never repeats a stage,
and a run killed with SIGKILL mid-stage resumes to exactly the rows of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from run_rows import BUILTIN

from presrm.config import JudgeConfig, load_config
from presrm.model.loading import load_checkpoint, load_policy
from presrm.model.policy import Policy
from presrm.run.loop import Loop
from presrm.run.plan import checkpoint_dir
from presrm.run.start import resume_run
from presrm.search.judge import JudgeResult, PairRequest, PointRequest
from presrm.search.modes.pairwise import PairwiseMode
from presrm.store.reader import query_rows
from presrm.store.writer import RunStore

SMALL = [
    "model=tiny",
    "problems=3",
    "eval_problems=2",
    "width=3",
    "max_steps=3",
    "iterations=1",
    "eval_search=false",
    "warmup.enabled=false",
    "warmup.eft_test_examples=0",
    "sampling.max_step_tokens=6",
    "train.finetune=lora",
    "train.batch_size=2",
    "train.lr=0.01",
    "judge.check=false",
]


class LongerStepJudge:
    """Fixed, order-independent verdicts, so the search keeps preference pairs."""

    mode = "pairwise"

    def __init__(self, policy: Policy, cfg: JudgeConfig) -> None:
        pass

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        out = []
        for r in requests:
            v = "A" if (len(r.step_a), r.step_a) > (len(r.step_b), r.step_b) else "B"
            out.append(JudgeResult(v, f"[[{v}]]", None, None, None))
        return out

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        raise NotImplementedError


def longer_step_judge(policy: Policy, cfg: JudgeConfig) -> PairwiseMode:
    """A run's judge factory that judges with :class:`LongerStepJudge`, pairwise."""
    return PairwiseMode(LongerStepJudge(policy, cfg))


def lora_b_norm(policy: Policy) -> float:
    return sum(float(p.detach().abs().sum()) for n, p in policy.model.named_parameters() if "lora_B" in n)


@pytest.mark.parametrize("algo", ["step-dpo", "ppo"])
def test_one_iteration_trains_the_adapter(tmp_path: Path, algo: str) -> None:
    cfg = load_config(
        None,
        [
            *SMALL,
            f"algo={algo}",
            "train.lora_r=4",
            "train.lora_alpha=12",
            f"out={str(tmp_path / 'run.duckdb')!r}",
        ],
    )
    store = RunStore.create(cfg.out, cfg)
    Loop(store, judge_factory=longer_step_judge).run()
    stages = query_rows(store.path, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "search"), (1, "train"), (1, "eval")]
    m1 = load_checkpoint(checkpoint_dir(store, 1))
    assert lora_b_norm(m1) > 0, "LoRA B starts at zero; training must move it"
    adapter = m1.model.peft_config["default"]
    assert (adapter.r, adapter.lora_alpha) == (4, 12)  # the config's, not add_lora's defaults
    metrics = dict(query_rows(store.path, "SELECT metric, count(*) FROM train_steps GROUP BY metric"))
    assert metrics, "training metrics are logged"
    if algo == "ppo":
        assert {"kl", "policy_loss", "value_loss", "reward_mean", "clipfrac", "entropy"} <= set(metrics)
    # the adapter changes the model's outputs
    base = load_policy("tiny", seed=cfg.seed)
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.no_grad():
        assert not torch.allclose(base.model(ids).logits, m1.model(ids).logits)
    evals = query_rows(store.path, "SELECT iteration, count(*) FROM evals GROUP BY 1 ORDER BY 1")
    assert evals == [(0, 2), (1, 2)]


def test_resume_after_finished_stages_does_not_repeat_them(tmp_path: Path) -> None:
    cfg = load_config(None, [*SMALL, "iterations=0", f"out={str(tmp_path / 'run.duckdb')!r}"])
    store = RunStore.create(cfg.out, cfg)
    Loop(store, judge_factory=longer_step_judge).run()
    before = query_rows(store.path, "SELECT count(*) FROM nodes")[0][0]
    stages_before = query_rows(store.path, "SELECT * FROM stages")
    resume_run(store.path)
    assert query_rows(store.path, "SELECT count(*) FROM nodes")[0][0] == before
    assert query_rows(store.path, "SELECT * FROM stages") == stages_before


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "presrm.cli", *args]


def _snapshot(path: Path) -> dict[str, list[tuple]]:
    return {
        "nodes": query_rows(
            path,
            "SELECT iteration, phase, tree_id, node_id, parent_id, text, chosen, self_score "
            "FROM nodes ORDER BY node_id",
        ),
        "judgments": query_rows(
            path, "SELECT judgment_id, node_a, node_b, verdict FROM judgments ORDER BY 1"
        ),
        "evals": query_rows(path, "SELECT iteration, mode, problem_id, correct FROM evals ORDER BY ALL"),
        "stages": query_rows(path, "SELECT iteration, stage FROM stages ORDER BY finished_at"),
        "problems": query_rows(path, "SELECT problem_id, split FROM problems ORDER BY ALL"),
        "train_steps": query_rows(
            path, "SELECT iteration, stage, step, metric FROM train_steps ORDER BY ALL"
        ),
    }


KILL_ARGS = [
    BUILTIN,
    "--set",
    "model=tiny",
    "--set",
    "problems=6",
    "--set",
    "eval_problems=4",
    "--set",
    "width=3",
    "--set",
    "max_steps=3",
    "--set",
    "iterations=1",
    "--set",
    "warmup.enabled=false",
    "--set",
    "warmup.eft_test_examples=0",
    "--set",
    "sampling.max_step_tokens=6",
    "--set",
    "batch_problems=1",
    "--set",
    "judge.verdict=probs",
    "--set",
    "judge.check=false",
    "--set",
    "eval_search=false",
    "--set",
    "algo=ppo",
]


@pytest.mark.slow
def test_sigkill_during_search_then_resume_gives_the_same_rows(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    reference = tmp_path / "reference.duckdb"
    subprocess.run(_cli("run", *KILL_ARGS, "--out", str(reference)), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed.duckdb"
    proc = subprocess.Popen(
        _cli("run", *KILL_ARGS, "--out", str(killed)),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    # Kill once the iteration-1 search has flushed some (not all) of its trees.
    while time.monotonic() < deadline:
        time.sleep(0.2)
        if not killed.exists():
            continue
        try:
            n = query_rows(
                killed,
                "SELECT count(DISTINCT tree_id) FROM nodes WHERE iteration = 1 AND phase = 'train'",
                timeout=1,
            )[0][0]
        except Exception:
            continue
        if n >= 1:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = query_rows(
        killed, "SELECT count(DISTINCT tree_id) FROM nodes WHERE iteration = 1 AND phase = 'train'"
    )
    assert 0 < partial[0][0] < 6, "the kill must land inside the search stage"
    assert (1, "search") not in {tuple(r) for r in query_rows(killed, "SELECT iteration, stage FROM stages")}

    done = subprocess.run(_cli("run", "--resume", str(killed)), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _snapshot(killed) == _snapshot(reference)
