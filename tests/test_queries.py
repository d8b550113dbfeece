"""The inspector's query layer and flags, on real run files built by tests/tui_fixtures.py.

Expected values are recomputed here from the raw rows in plain Python, independently
of the SQL under test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest
from tui_fixtures import MARKUP_STEP, build_empty_run, build_run_db

from presrm import inspect as Q
from presrm.errors import StoreError
from presrm.store import flags as F
from presrm.store.writer import RunStore


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_run_db(tmp_path_factory.mktemp("run") / "run.duckdb", n_problems=8, iterations=3, seed=0)


@pytest.fixture
def writable_db(run_db: Path, tmp_path: Path) -> Path:
    """A private copy for tests that write (flags, new rows)."""
    return Path(shutil.copy(run_db, tmp_path / "run.duckdb"))


def rows(path: Path, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        cur = con.execute(sql, params or [])
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()


def brute_auroc(scores: list[float], labels: list[bool]) -> float | None:
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return None
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg) / (len(pos) * len(neg))


# ---- tree summaries ---------------------------------------------------------------------------


def expected_tree_rows(path: Path) -> dict[int, dict[str, Any]]:
    """The problems table recomputed from nodes and judgments in Python."""
    nodes = rows(path, "SELECT * FROM nodes")
    judgments = rows(path, "SELECT * FROM judgments WHERE tree_id IS NOT NULL")
    out: dict[int, dict[str, Any]] = {}
    by_tree: dict[int, list[dict]] = defaultdict(list)
    for n in nodes:
        by_tree[n["tree_id"]].append(n)
    for tree_id, ns in by_tree.items():
        path_nodes = sorted((n for n in ns if n["chosen"] and not n["rolled_back"]), key=lambda n: n["depth"])
        scores = [n["soft_score"] for n in path_nodes if n["soft_score"] is not None]
        final = [n for n in path_nodes if n["is_final"]]
        out[tree_id] = {
            "n_nodes": len(ns),
            "n_steps": len(path_nodes),
            "n_rollbacks": sum(1 for n in ns if n["rolled_back"]),
            "min_score": min(scores) if scores else None,
            "mean_score": sum(scores) / len(scores) if scores else None,
            "correct": final[-1]["correct"] if final else None,
            "final_answer": final[-1]["final_answer"] if final else None,
            "n_judgments": 0,
            "unparseable": 0,
            "checker_disagree": 0,
            "inconsistent": 0,
            "n_pairs": 0,
        }
    pairs: dict[tuple[int, int, int], dict[int, Any]] = defaultdict(dict)
    for j in judgments:
        t = out[j["tree_id"]]
        t["n_judgments"] += 1
        t["unparseable"] += j["verdict"] is None
        t["checker_disagree"] += (
            j["expected"] is not None and j["verdict"] is not None and j["verdict"] != j["expected"]
        )
        if j["mode"] == "pairwise" and j["node_b"] is not None:
            key = (j["tree_id"], min(j["node_a"], j["node_b"]), max(j["node_a"], j["node_b"]))
            pairs[key][j["order"]] = j["winner"]
    for (tree_id, _, _), by_order in pairs.items():
        if len(by_order) == 2:
            out[tree_id]["n_pairs"] += 1
            w0, w1 = by_order[0], by_order[1]
            out[tree_id]["inconsistent"] += w0 is not None and w1 is not None and w0 != w1
    return out


def test_tree_summaries_match_raw_rows(run_db: Path) -> None:
    table = Q.tree_summaries(run_db)
    expected = expected_tree_rows(run_db)
    assert table.column_names == list(Q.TREE_COLUMNS)
    got = {r["tree_id"]: r for r in table.to_pylist()}
    assert set(got) == set(expected)
    for tree_id, exp in expected.items():
        for key, value in exp.items():
            if isinstance(value, float):
                assert got[tree_id][key] == pytest.approx(value), (tree_id, key)
            else:
                assert got[tree_id][key] == value, (tree_id, key)
    # the fixture has what the filters need
    assert any(r["inconsistent"] for r in got.values())
    assert any(r["unparseable"] for r in got.values())
    assert any(r["n_rollbacks"] for r in got.values())
    assert {r["phase"] for r in got.values()} == {"train", "eval", "greedy", "eft_test"}


def _append_tree(path: Path, *, extra_judgment_for: int | None = None) -> int:
    """Append one small tree (and optionally a judgment to an existing tree) like a live run."""
    store = RunStore.open(path)
    tree_id = store.new_ids("tree", 1)[0]
    a, b = store.new_ids("node", 2)
    base = {"iteration": 2, "phase": "train", "problem_id": "train-00000", "tree_id": tree_id}
    store.append_rows(
        "nodes",
        [
            {
                **base,
                "node_id": a,
                "parent_id": None,
                "depth": 1,
                "expansion": 1,
                "text": "Step 1: live = 1. The answer is 1.",
                "self_score": 1.0,
                "score_kind": "win_rate",
                "soft_score": 0.75,
                "chosen": True,
                "rejected": False,
                "rolled_back": False,
                "is_final": True,
                "final_answer": "1",
                "correct": False,
                "step_check": True,
            },
            {
                **base,
                "node_id": b,
                "parent_id": None,
                "depth": 1,
                "expansion": 1,
                "text": "Step 1: live = 2",
                "self_score": 0.0,
                "score_kind": "win_rate",
                "soft_score": 0.25,
                "chosen": False,
                "rejected": True,
                "rolled_back": False,
                "is_final": False,
                "step_check": False,
            },
        ],
    )
    js = []
    for order, (x, y) in enumerate(((a, b), (b, a))):
        js.append(
            {
                "iteration": 2,
                "phase": "train",
                "judgment_id": store.new_ids("judgment", 1)[0],
                "tree_id": tree_id,
                "mode": "pairwise",
                "node_a": x,
                "node_b": y,
                "order": order,
                "raw_output": "[[A]]",
                "verdict": "A",
                "p_a": 0.9,
                "p_b": 0.1,
                "winner": x,
                "expected": None,
            }
        )
    if extra_judgment_for is not None:
        js.append(
            {
                "iteration": 2,
                "phase": "train",
                "judgment_id": store.new_ids("judgment", 1)[0],
                "tree_id": extra_judgment_for,
                "mode": "pairwise",
                "node_a": None,
                "node_b": None,
                "order": 0,
                "raw_output": "???",
                "verdict": None,
                "winner": None,
                "expected": None,
            }
        )
    store.append_rows("judgments", js)
    store.flush()
    return tree_id


def test_tree_index_incremental_refresh_equals_full(writable_db: Path) -> None:
    index = Q.TreeIndex(writable_db)
    assert index.refresh() is True
    assert index.refresh() is False  # nothing changed: no work
    before = index.table.num_rows
    old_tree = int(index.table.column("tree_id")[before // 2].as_py())
    new_tree = _append_tree(writable_db, extra_judgment_for=old_tree)
    assert index.refresh() is True
    assert index.table.num_rows == before + 1
    assert index.table.equals(Q.tree_summaries(writable_db))
    row = {r["tree_id"]: r for r in index.table.to_pylist()}
    assert row[new_tree]["inconsistent"] == 1 and row[new_tree]["n_pairs"] == 1
    # a flag alone changes only the flag counts
    F.add_flag(
        writable_db,
        "node",
        int(rows(writable_db, "SELECT min(node_id) AS n FROM nodes WHERE tree_id = ?", [new_tree])[0]["n"]),
    )
    assert index.refresh() is True
    assert {r["tree_id"]: r["n_flags"] for r in index.table.to_pylist()}[new_tree] == 1
    assert index.table.equals(Q.tree_summaries(writable_db))


def test_tree_index_reloads_fully_when_rows_were_discarded(writable_db: Path) -> None:
    index = Q.TreeIndex(writable_db)
    index.refresh()
    con = duckdb.connect(str(writable_db))
    con.execute("DELETE FROM nodes WHERE iteration = 2")
    con.execute("DELETE FROM judgments WHERE iteration = 2")
    con.close()
    assert index.refresh() is True
    assert index.table.equals(Q.tree_summaries(writable_db))
    assert 2 not in index.table.column("iteration").to_pylist()


# ---- filtering --------------------------------------------------------------------------------


def test_presets_select_exactly_the_matching_trees(run_db: Path) -> None:
    table = Q.tree_summaries(run_db)
    all_rows = table.to_pylist()
    checks = {
        "all": lambda r: True,
        "confident_wrong": lambda r: (
            r["correct"] is False and r["min_score"] is not None and r["min_score"] >= 0.5
        ),
        "checker": lambda r: r["checker_disagree"] > 0,
        "inconsistent": lambda r: r["inconsistent"] > 0,
        "flagged": lambda r: r["n_flags"] > 0,
        "unfinished": lambda r: not r["finished"],
    }
    assert set(checks) == set(Q.PRESETS)
    for preset, keep in checks.items():
        page = Q.select_trees(table, Q.TreeQuery(preset=preset, limit=10_000))
        assert sorted(page.rows.column("tree_id").to_pylist()) == sorted(
            r["tree_id"] for r in all_rows if keep(r)
        )
        assert page.total == page.rows.num_rows
    assert Q.select_trees(table, Q.TreeQuery(preset="confident_wrong")).total > 0
    assert Q.select_trees(table, Q.TreeQuery(preset="checker")).total > 0


def test_sort_page_and_filters(run_db: Path) -> None:
    table = Q.tree_summaries(run_db)
    q = Q.TreeQuery(sort="min_score", descending=True, limit=7, iteration=1, phase="train")
    page = Q.select_trees(table, q)
    expected = sorted(
        (r for r in table.to_pylist() if r["iteration"] == 1 and r["phase"] == "train"),
        key=lambda r: (r["min_score"] is None, -(r["min_score"] or 0), r["tree_id"]),
    )
    assert page.total == len(expected)
    assert page.rows.column("tree_id").to_pylist() == [r["tree_id"] for r in expected[:7]]
    second = Q.select_trees(table, q.with_(offset=7))
    assert second.rows.column("tree_id").to_pylist() == [r["tree_id"] for r in expected[7:14]]
    with pytest.raises(StoreError, match="unknown filter preset"):
        Q.select_trees(table, Q.TreeQuery(preset="nope"))
    with pytest.raises(StoreError, match="cannot sort"):
        Q.select_trees(table, Q.TreeQuery(sort="text; DROP TABLE nodes"))


def test_search_looks_in_step_text_literally(run_db: Path) -> None:
    table = Q.tree_summaries(run_db)
    markup_trees = {
        r["tree_id"] for r in rows(run_db, "SELECT tree_id FROM nodes WHERE text = ?", [MARKUP_STEP])
    }
    assert len(markup_trees) == 1
    hits = Q.search_tree_ids(run_db, "\\frac{a}[b]")
    assert hits == markup_trees
    page = Q.select_trees(table, Q.TreeQuery(search="\\frac{a}[b]"), hits)
    assert set(page.rows.column("tree_id").to_pylist()) == markup_trees
    # LIKE wildcards and quotes are plain characters
    assert Q.search_tree_ids(run_db, "%") == set()
    assert Q.search_tree_ids(run_db, "' OR 1=1 --") == set()
    # problem ids and questions match without the file
    by_id = Q.select_trees(table, Q.TreeQuery(search="TRAIN-00003"))
    assert by_id.total > 0 and set(by_id.rows.column("problem_id").to_pylist()) == {"train-00003"}


# ---- one tree ---------------------------------------------------------------------------------


def test_load_tree(run_db: Path) -> None:
    tree_id = rows(run_db, "SELECT tree_id FROM nodes WHERE text = ?", [MARKUP_STEP])[0]["tree_id"]
    detail = Q.load_tree(run_db, tree_id)
    raw_nodes = rows(run_db, "SELECT * FROM nodes WHERE tree_id = ? ORDER BY node_id", [tree_id])
    assert [n.node_id for n in detail.nodes] == [n["node_id"] for n in raw_nodes]
    assert MARKUP_STEP in [n.text for n in detail.nodes]
    first_steps = detail.children(None)
    assert {n.depth for n in first_steps} == {1}
    assert len(first_steps) == sum(1 for n in raw_nodes if n["parent_id"] is None)
    path = detail.chosen_path()
    assert [n.depth for n in path] == list(range(1, len(path) + 1))
    node = first_steps[0]
    calls = detail.judgments_of(node.node_id)
    raw = rows(run_db, "SELECT judgment_id FROM judgments WHERE ? IN (node_a, node_b)", [node.node_id])
    assert sorted(j.judgment_id for j in calls) == sorted(r["judgment_id"] for r in raw)
    assert {j.order for j in calls} == {0, 1}
    with pytest.raises(StoreError, match="tree 999999 not found"):
        Q.load_tree(run_db, 999_999)


# ---- iterations and calibration -------------------------------------------------------------


def test_iteration_summaries_stored_and_computed(run_db: Path) -> None:
    trees = Q.tree_summaries(run_db)
    summaries = Q.iteration_summaries(run_db, trees)
    assert [s.iteration for s in summaries] == [0, 1, 2]
    stored: dict[int, dict[str, float]] = defaultdict(dict)
    for r in rows(run_db, "SELECT * FROM eval_metrics"):
        stored[r["iteration"]][r["metric"]] = r["value"]
    for s in summaries:
        for name in Q.HEADLINE_METRICS:
            if name in stored[s.iteration]:
                assert s.metrics[name] == pytest.approx(stored[s.iteration][name])
                assert name not in s.computed
    last = summaries[-1]
    # the fixture left these out of the last iteration's eval_metrics
    assert "judge_accuracy" not in stored[2] and "judge_accuracy" in last.computed
    evals = rows(run_db, "SELECT min_score, correct FROM evals WHERE iteration = 2 AND mode = 'search'")
    want_auc = brute_auroc([r["min_score"] for r in evals], [bool(r["correct"]) for r in evals])
    assert last.metrics["auroc_min"] == pytest.approx(want_auc)
    assert ("auroc_min" in last.computed) == (want_auc is not None)
    # judge accuracy on held-out pairs, right only when both orders are right
    eft = rows(run_db, "SELECT * FROM judgments WHERE iteration = 2 AND phase = 'eft_test'")
    by_tree: dict[int, list[dict]] = defaultdict(list)
    for j in eft:
        by_tree[j["tree_id"]].append(j)
    right = sum(all(j["verdict"] == j["expected"] for j in js) for js in by_tree.values())
    assert last.metrics["judge_accuracy"] == pytest.approx(right / len(by_tree))
    # train accuracy from the trees; counts from the rows
    train = [r for r in trees.to_pylist() if r["iteration"] == 2 and r["phase"] == "train"]
    assert last.metrics["train_accuracy"] == pytest.approx(
        sum(bool(r["correct"]) for r in train) / len(train)
    )
    assert last.n_nodes == rows(run_db, "SELECT count(*) AS n FROM nodes WHERE iteration = 2")[0]["n"]
    assert summaries[0].metrics["train_accuracy"] is None  # M0 is only evaluated
    # without trees and without computing: stored values only, same counts from SQL
    quick = Q.iteration_summaries(run_db, None, compute_missing=False)
    assert quick[-1].metrics["judge_accuracy"] is None and not quick[-1].computed
    counts = [(s.n_trees, s.n_nodes, s.n_judgments, s.n_flags) for s in summaries]
    assert [(s.n_trees, s.n_nodes, s.n_judgments, s.n_flags) for s in quick] == counts
    assert Q.run_info(run_db).n_trees == Q.run_info(run_db, trees).n_trees == trees.num_rows


def test_calibration(run_db: Path) -> None:
    trees = Q.tree_summaries(run_db)
    cal = Q.calibration(trees, score="min_score", phase="eval", n_bins=5, top=3)
    sel = [
        r
        for r in trees.to_pylist()
        if r["phase"] == "eval" and r["min_score"] is not None and r["correct"] is not None
    ]
    assert cal.n == len(sel) and sum(b.n for b in cal.bins) == cal.n
    for b in cal.bins:
        inside = [r for r in sel if b.lo <= r["min_score"] < b.hi or (b.hi == 1.0 and r["min_score"] == 1.0)]
        assert b.n == len(inside)
        if inside:
            assert b.accuracy == pytest.approx(sum(bool(r["correct"]) for r in inside) / len(inside))
    assert cal.auroc == pytest.approx(
        brute_auroc([r["min_score"] for r in sel], [bool(r["correct"]) for r in sel])
    )
    wrong = sorted((r for r in sel if not r["correct"]), key=lambda r: (-r["min_score"], r["tree_id"]))[:3]
    assert [t.tree_id for t in cal.confident_wrong] == [r["tree_id"] for r in wrong]
    right = sorted((r for r in sel if r["correct"]), key=lambda r: (r["min_score"], r["tree_id"]))[:3]
    assert [t.tree_id for t in cal.unconfident_right] == [r["tree_id"] for r in right]
    with pytest.raises(StoreError, match="unknown score"):
        Q.calibration(trees, score="text")


# ---- empty, missing and foreign files --------------------------------------------------------


def test_empty_run(tmp_path: Path) -> None:
    path = build_empty_run(tmp_path / "empty.duckdb")
    assert Q.tree_summaries(path).num_rows == 0
    assert Q.iteration_summaries(path) == []
    assert Q.calibration(Q.tree_summaries(path)).n == 0
    info = Q.run_info(path)
    assert info.n_nodes == 0 and info.n_trees == 0
    assert Q.data_version(path) == Q.DataVersion()


def test_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="run file not found"):
        Q.data_version(tmp_path / "nope.duckdb")
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t (x INT)")
    con.close()
    with pytest.raises(StoreError, match="not a presrm run database"):
        Q.tree_summaries(other)
    text = tmp_path / "notes.duckdb"
    text.write_text("hello")
    with pytest.raises(StoreError, match="cannot open as a DuckDB database"):
        Q.run_info(text)


# ---- flags ------------------------------------------------------------------------------------


def test_flags_add_list_remove(writable_db: Path) -> None:
    j = rows(
        writable_db,
        "SELECT judgment_id, verdict FROM judgments WHERE verdict = 'A' AND phase = 'train'"
        " ORDER BY judgment_id LIMIT 1",
    )[0]
    flag = F.add_flag(writable_db, "judgment", j["judgment_id"], note="[bold]no[/] {0}", who="tester")
    assert flag.original_verdict == "A" and flag.corrected_verdict == "B"
    node = rows(writable_db, "SELECT node_id FROM nodes WHERE chosen AND NOT rolled_back LIMIT 1")[0][
        "node_id"
    ]
    flag2 = F.add_flag(writable_db, "node", node)
    assert flag2.flag_id == flag.flag_id + 1 and flag2.original_verdict == "chosen"
    stored = rows(writable_db, "SELECT * FROM flags ORDER BY flag_id")
    assert [(r["target"], r["target_id"], r["note"], r["who"]) for r in stored] == [
        ("judgment", j["judgment_id"], "[bold]no[/] {0}", "tester"),
        ("node", node, "", flag2.who),
    ]
    assert [f.flag_id for f in F.list_flags(writable_db, "node")] == [flag2.flag_id]
    assert F.remove_flags(writable_db, "node", node) == 1
    assert F.remove_flag(writable_db, flag.flag_id) is True
    assert F.remove_flag(writable_db, flag.flag_id) is False
    assert rows(writable_db, "SELECT * FROM flags") == []
    with pytest.raises(StoreError, match="no node 123456789"):
        F.add_flag(writable_db, "node", 123456789)
    with pytest.raises(StoreError, match="flag target must be"):
        F.add_flag(writable_db, "tree", 1)
    with pytest.raises(StoreError, match="corrected verdict"):
        F.add_flag(writable_db, "judgment", j["judgment_id"], corrected_verdict="C")
    assert rows(writable_db, "SELECT * FROM flags") == []  # failed adds leave nothing behind


def test_export_flags_jsonl(writable_db: Path, tmp_path: Path) -> None:
    # a judgment at depth 2, so the prefix has one accepted step
    j = rows(
        writable_db,
        """
        SELECT j.judgment_id, j.node_a, j.node_b, j.verdict, a.parent_id, a.text AS ta, b.text AS tb
        FROM judgments j JOIN nodes a ON a.node_id = j.node_a JOIN nodes b ON b.node_id = j.node_b
        WHERE j.phase = 'train' AND a.depth = 2 AND j.verdict IS NOT NULL ORDER BY j.judgment_id LIMIT 1""",
    )[0]
    F.add_flag(writable_db, "judgment", j["judgment_id"], note="A is off by one")
    # judgments between two identical steps are not exported (they teach the judge nothing)
    winner = rows(
        writable_db,
        "SELECT winner, count(*) AS n FROM judgments j"
        " JOIN nodes a ON a.node_id = j.node_a JOIN nodes b ON b.node_id = j.node_b"
        " WHERE mode = 'pairwise' AND winner IS NOT NULL AND a.text <> b.text"
        " GROUP BY winner ORDER BY n DESC, winner LIMIT 1",
    )[0]
    F.add_flag(writable_db, "node", winner["winner"], note="wrong step")
    out = tmp_path / "out" / "flags.jsonl"
    n = F.export_flags_jsonl(writable_db, out)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert n == len(lines) == 1 + winner["n"]
    first = lines[0]
    parent = rows(writable_db, "SELECT text FROM nodes WHERE node_id = ?", [j["parent_id"]])[0]["text"]
    assert first["previous_steps"] == [parent]
    assert (first["step_a"], first["step_b"]) == (j["ta"], j["tb"])
    assert first["verdict"] == ("B" if j["verdict"] == "A" else "A")
    assert first["reason"] == "A is off by one"
    assert first["question"].startswith("Start with")
    assert set(first) == {"question", "previous_steps", "step_a", "step_b", "verdict", "reason", "source"}
    flagged = winner["winner"]
    for line in lines[1:]:
        assert line["source"]["node_id"] == flagged and line["reason"] == "wrong step"
        call = rows(
            writable_db,
            "SELECT node_a, node_b, winner FROM judgments WHERE judgment_id = ?",
            [line["source"]["judgment_id"]],
        )[0]
        assert call["winner"] == flagged
        # the corrected verdict points away from the flagged step
        assert line["verdict"] == ("B" if call["node_a"] == flagged else "A")
    # the export is what a later run's warm-up reads (--set warmup.eft_jsonl=...)
    from presrm.train.eft_jsonl import load_eft_jsonl

    pairs = load_eft_jsonl(out)
    assert [p.verdict for p in pairs] == [line["verdict"] for line in lines]
    assert pairs[0].previous_steps == (parent,)


def test_flag_waits_for_a_writer_in_another_process(writable_db: Path) -> None:
    """A real second process holds the file read-write; add_flag retries until it lets go."""
    script = textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(writable_db)!r})
        print("locked", flush=True)
        time.sleep(1.5)
        con.close()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        start = time.monotonic()
        flag = F.add_flag(writable_db, "node", 0, note="waited", timeout=30)
        waited = time.monotonic() - start
    finally:
        proc.wait(timeout=30)
    assert waited > 0.5  # it really was blocked, and got through once the writer closed
    assert [f.note for f in F.list_flags(writable_db)] == ["waited"] and flag.flag_id == 0


def test_flag_gives_up_with_a_clear_message(writable_db: Path) -> None:
    con = duckdb.connect(str(writable_db))  # this process holds it read-write
    try:
        script = (
            f"from presrm.store.flags import add_flag; add_flag({str(writable_db)!r}, 'node', 0, timeout=0.5)"
        )
        res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        con.close()
    assert res.returncode != 0
    assert "still locked by another process" in res.stderr
