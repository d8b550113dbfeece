"""``presrm run`` data parallel: two real CPU processes (gloo) on the tiny model, to the end.

Launched the way the README says: ``accelerate launch --multi_gpu --num_processes 2``. On a
machine without GPUs that flag is what makes accelerate start torchrun (two processes, a
MULTI_CPU gloo group); ``accelerate launch --cpu --num_processes 2`` runs accelerate's simple
launcher, which starts ONE process (multi-CPU there needs mpirun and a hostfile).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from run_rows import BUILTIN

from presrm.errors import PresrmError
from presrm.model.adapters import prepare_for_training
from presrm.model.loading import load_checkpoint
from presrm.run.distributed import SINGLE, Dist, env_ranks, setup, weights_digest
from presrm.run.gather import interleave, renumber
from presrm.search.tree import Judgment, LocalIds, Node, Tree
from presrm.store.reader import query_rows
from presrm.tasks.base import Problem

ROOT = Path(__file__).parents[1]
SETTINGS = [
    "model=tiny",
    "device=cpu",
    "iterations=1",
    "problems=4",
    "eval_problems=4",
    "width=2",
    "max_steps=3",
    "eval_search=false",
    "sampling.max_step_tokens=8",
    "judge.check=false",
    "train.batch_size=2",
    "warmup.ift_examples=4",
    "warmup.eft_examples=4",
    "warmup.eft_test_examples=2",
]


def launch(*args: str) -> subprocess.CompletedProcess[str]:
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        "0",
        "-m",
        "presrm.cli",
        *args,
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)


def one(path: Path, sql: str) -> int:
    return int(query_rows(path, sql)[0][0])


def check_complete(path: Path) -> None:
    stages = query_rows(path, "SELECT iteration, stage FROM stages ORDER BY finished_at")
    assert stages == [(0, "eval"), (1, "warmup"), (1, "eval"), (2, "search"), (2, "train"), (2, "eval")]
    # Every train problem searched exactly once, by one tree; every eval problem evaluated each iteration.
    searched = query_rows(
        path,
        "SELECT p.problem_id, count(DISTINCT n.tree_id) FROM problems p LEFT JOIN nodes n"
        " ON n.problem_id = p.problem_id AND n.phase = 'train' WHERE p.split = 'train'"
        " GROUP BY 1",
    )
    assert len(searched) == 4 and all(trees == 1 for _, trees in searched), searched
    evals = query_rows(
        path, "SELECT iteration, count(*), count(DISTINCT problem_id) FROM evals GROUP BY 1 ORDER BY 1"
    )
    assert evals == [(0, 4, 4), (1, 4, 4), (2, 4, 4)]
    assert one(path, "SELECT count(*) FROM problems WHERE split = 'eval'") == 4
    # Ids assigned by rank 0 are unique, and the references between rows stay inside their tree.
    assert one(path, "SELECT count(*) - count(DISTINCT node_id) FROM nodes") == 0
    assert one(path, "SELECT count(*) - count(DISTINCT judgment_id) FROM judgments") == 0
    assert (
        one(
            path,
            "SELECT count(*) FROM nodes c LEFT JOIN nodes p ON p.node_id = c.parent_id"
            " WHERE c.parent_id IS NOT NULL AND (p.node_id IS NULL OR p.tree_id <> c.tree_id)",
        )
        == 0
    )
    assert (
        one(
            path,
            "SELECT count(*) FROM judgments j JOIN nodes a ON a.node_id = j.node_a"
            " WHERE a.tree_id <> j.tree_id",
        )
        == 0
    )
    assert one(path, "SELECT count(*) FROM judgments WHERE phase = 'train'") > 0


def check_replicas(path: Path, iteration: int, stage: str) -> None:
    """Both ranks reported the same weights after training, and they are the saved checkpoint's."""
    (detail,) = query_rows(
        path, "SELECT detail::VARCHAR FROM stages WHERE iteration = ? AND stage = ?", [iteration, stage]
    )[0]
    info = json.loads(detail)
    assert info["updates"] > 0, info  # DDP really trained
    by_rank = info["weights_sha256_by_rank"]
    assert len(by_rank) == 2 and by_rank[0] == by_rank[1], by_rank
    policy = prepare_for_training(load_checkpoint(path.with_suffix(".ckpt") / f"M{iteration}", device="cpu"))
    assert weights_digest(policy.model)[:16] == by_rank[0]


def eval_rows(path: Path, iteration: int) -> list[tuple]:
    return query_rows(
        path,
        "SELECT problem_id, node_id, parent_id, text, chosen FROM nodes"
        " WHERE iteration = ? AND phase = 'greedy' ORDER BY node_id",
        [iteration],
    )


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["step-dpo", "ppo"])
def test_two_process_run_to_the_end_and_resume(tmp_path: Path, algo: str) -> None:
    out = tmp_path / "run.duckdb"
    t0 = time.perf_counter()
    sets = [a for s in [*SETTINGS, f"algo={algo}"] for a in ("--set", s)]
    proc = launch("run", BUILTIN, *sets, "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("run file:") == 1  # rank 0 alone speaks
    check_complete(out)
    check_replicas(out, 1, "warmup")
    check_replicas(out, 2, "train")
    final_eval = eval_rows(out, 2)
    assert len({r[0] for r in final_eval}) == 4
    if algo != "step-dpo":
        return  # resuming does not depend on the algorithm: once is enough

    # Resume: forget the last stage; both ranks load M2 from its checkpoint and redo the eval,
    # which gives the same rows (the same weights, the same shards, the same seeds).
    con = duckdb.connect(str(out))
    con.execute("DELETE FROM stages WHERE iteration = 2 AND stage = 'eval'")
    con.close()
    proc = launch("run", "--resume", str(out))
    assert proc.returncode == 0, proc.stderr[-4000:]
    check_complete(out)
    assert eval_rows(out, 2) == final_eval
    print(f"{algo}: run and resume (two 2-process launches) in {time.perf_counter() - t0:.1f}s")


@pytest.mark.slow
def test_a_run_file_rank_0_refuses_stops_every_rank(tmp_path: Path) -> None:
    out = tmp_path / "run.duckdb"
    out.write_bytes(b"not presrm's")  # rank 0 refuses to create over it; rank 1 must not wait for it
    sets = [a for s in SETTINGS for a in ("--set", s)]
    proc = launch("run", BUILTIN, *sets, "--out", str(out))  # a hang fails on launch's timeout
    assert proc.returncode != 0, proc.stderr[-4000:]
    # Both ranks stop on the same one-line error; before, rank 1 died in a traceback when rank 0
    # left the process group. (The launcher's own traceback, for the failed exit, is accelerate's.)
    assert f"[rank 1] error: {out} already exists: use --resume" in proc.stderr, proc.stderr[-4000:]
    assert "[rank1]: Traceback" not in proc.stderr, proc.stderr[-4000:]
    assert out.read_bytes() == b"not presrm's"


# ---- in-process pieces ---------------------------------------------------------------------


def test_rank_detection_and_single_process_collectives(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert env_ranks() == (0, 1, 0)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert env_ranks() == (3, 4, 1)
    single = Dist()
    assert single.is_main and not single.enabled
    assert single.from_main(lambda: 5) == 5 and single.gather("x") == ["x"] and single.any(True)
    assert Dist(1, 2, 1).device("cpu") == "cpu"


def test_fsdp_is_refused_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(PresrmError, match="FSDP is not supported"):
        setup("cpu")
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert setup("cpu") is SINGLE  # no launcher: nothing to join


def _tree(tree_id: int, problem: str, base: int) -> Tree:
    """A two-node tree with one judgment, numbered from ``base`` like one rank's LocalIds would."""

    def node(i: int, parent: int | None) -> Node:
        return Node(base + i, parent, 1, 0, f"{problem}-{i}", 1, 0.0, "stop", "ok", False, None, None, None)

    a, b = node(0, None), node(1, None)
    j = Judgment(base, "pairwise", a.node_id, b.node_id, 0, None, "[[A]]", "A", None, None, a.node_id, None)
    c = node(2, a.node_id)
    return Tree(tree_id, Problem(problem, "q", "1", (), "t"), [a, b, c], [j], [a, c])


def test_gathered_trees_are_put_back_in_order_and_renumbered() -> None:
    # Two ranks, each numbering from 0: rank 0 searched problems p0, p2; rank 1 p1.
    parts = [[_tree(0, "p0", 0), _tree(1, "p2", 10)], [_tree(0, "p1", 0)]]
    trees = interleave(parts)
    assert [t.problem.problem_id for t in trees] == ["p0", "p1", "p2"]
    ids = LocalIds()
    ids.new_ids("node", 100)  # the run already holds nodes 0..99
    renumber(trees, ids)  # type: ignore[arg-type]
    assert [t.tree_id for t in trees] == [0, 1, 2]
    node_ids = [n.node_id for t in trees for n in t.nodes]
    assert node_ids == list(range(100, 109))
    for t in trees:
        a, b, c = t.nodes
        assert t.path == [a, c] and c.parent_id == a.node_id and a.parent_id is None
        (j,) = t.judgments
        assert (j.node_a, j.node_b, j.winner) == (a.node_id, b.node_id, a.node_id)
    assert [t.judgments[0].judgment_id for t in trees] == [0, 1, 2]
