"""`presrm run` without a config file runs the quick start: the re-posing round at a level the base
has never seen, shrunk here by --set to seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from presrm.cli import QUICKSTART
from presrm.config import load_config
from presrm.store.reader import query_rows


def test_the_quick_start_config_is_the_re_posing_round() -> None:
    cfg = load_config(QUICKSTART, [])
    assert (cfg.model, cfg.task, cfg.algo, cfg.judge.mode) == ("default", "arith", "rft", "repose")
    assert cfg.task_options["n_ops"] == 4 and cfg.curriculum.levels == [4]
    assert cfg.curriculum.eval_levels == [2, 3]
    assert cfg.judge.repose_propose and cfg.train.rft.balance_below and not cfg.warmup.enabled


def test_presrm_run_without_a_config_runs_the_quick_start(tmp_path: Path) -> None:
    out = tmp_path / "run.duckdb"
    shrink = [
        "problems=4",
        "eval_problems=4",
        "batch_problems=4",
        "train.rft.updates=2",
        "train.rft.batch_size=4",
    ]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "presrm.cli",
            "run",
            *(a for s in shrink for a in ("--set", s)),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads(query_rows(out, "SELECT config_json FROM runs")[0][0])
    assert (config["algo"], config["judge"]["mode"], config["curriculum"]["levels"]) == ("rft", "repose", [4])
    modes = {m for (m,) in query_rows(out, "SELECT DISTINCT mode FROM evals")}
    assert modes == {"greedy", "greedy:n_ops=2", "greedy:n_ops=3"}
    stages = [s for (s,) in query_rows(out, "SELECT stage FROM stages ORDER BY iteration, finished_at")]
    assert stages == ["eval", "search", "train", "eval"]
    # The closing table: a column per level, M0 and M1 rows.
    header = next(line for line in proc.stdout.splitlines() if "n_ops=4 taught" in line)
    assert header.index("n_ops=2") < header.index("n_ops=3") < header.index("n_ops=4 taught")
    assert "M1" in proc.stdout
