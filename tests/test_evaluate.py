"""summarize_iteration / write_summary / reliability / judge_table / write_report on a hand-built run.

Every expected number below is worked out by hand in the comments from the rows
that ``build_run`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from presrm.config import RunConfig
from presrm.errors import PresrmError, StoreError
from presrm.eval.evaluate import (
    METRICS,
    EvaluationError,
    judge_table,
    recompute_metrics,
    reliability,
    run_iterations,
    stored_metrics,
    summarize_iteration,
    write_summary,
)
from presrm.eval.report import ReportError, write_report
from presrm.store.reader import query_rows
from presrm.store.writer import RunStore, StageDone


def _node(
    it: int,
    phase: str,
    tree: int,
    nid: int,
    depth: int,
    score: float | None,
    check: bool | None,
    chosen: bool = False,
    rolled: bool = False,
    parent: int | None = None,
) -> dict[str, Any]:
    return {
        "iteration": it,
        "phase": phase,
        "problem_id": f"q{tree}",
        "tree_id": tree,
        "node_id": nid,
        "parent_id": parent,
        "depth": depth,
        "text": f"Step {depth}: node {nid}",
        "n_tokens": 5,
        # The hand computations below use one score for both: selection and the graded soft score.
        "self_score": score,
        "soft_score": score,
        "score_kind": None if score is None else "win_rate",
        "chosen": chosen,
        "rejected": False,
        "rolled_back": rolled,
        "is_final": False,
        "step_check": check,
    }


def _judgment(
    it: int,
    phase: str,
    jid: int,
    tree: int | None,
    a: int,
    b: int,
    order: int,
    verdict: str | None,
    expected: str | None = None,
    mode: str = "pairwise",
) -> dict[str, Any]:
    winner = None if verdict is None else (a if verdict == "A" else b)
    return {
        "iteration": it,
        "phase": phase,
        "judgment_id": jid,
        "tree_id": tree,
        "mode": mode,
        "node_a": a,
        "node_b": b,
        "order": order,
        "raw_output": f"[[{verdict}]]",
        "verdict": verdict,
        "winner": winner,
        "expected": expected,
    }


def _eval(
    it: int,
    mode: str,
    pid: str,
    correct: bool | None,
    n_steps: int | None = None,
    n_tokens: int | None = None,
    scores: tuple[float | None, float | None, float | None] = (None, None, None),
) -> dict[str, Any]:
    return {
        "iteration": it,
        "mode": mode,
        "problem_id": pid,
        "correct": correct,
        "n_steps": n_steps,
        "n_tokens": n_tokens,
        "min_score": scores[0],
        "mean_score": scores[1],
        "last_score": scores[2],
    }


def build_run(path: Path) -> RunStore:
    store = RunStore.create(path, RunConfig(model="tiny"))
    store.append_rows("iterations", [{"iteration": i, "model_name": f"M{i}"} for i in range(3)])

    # --- iteration 0: greedy evals and one-order held-out judge pairs only
    store.append_rows(
        "evals", [_eval(0, "greedy", "e1", False, 4, 40), _eval(0, "greedy", "e2", False, 2, 40)]
    )
    store.append_rows(
        "judgments",
        [
            _judgment(0, "eft_test", 900, None, 2000, 2001, 0, "A", "A"),
            _judgment(0, "eft_test", 901, None, 2002, 2003, 0, "A", "B"),
        ],
    )

    # --- iteration 1
    store.append_rows(
        "evals",
        [
            _eval(1, "greedy", "e1", True, 2, 20),
            _eval(1, "greedy", "e2", False, 3, 30),
            _eval(1, "greedy", "e3", True, 3, 40),
            _eval(1, "greedy", "e4", None),  # no final answer: counts as wrong, no length
            _eval(1, "search", "e1", True, scores=(0.2, 0.5, 0.9)),
            _eval(1, "search", "e2", True, scores=(0.6, 0.7, 0.8)),
            _eval(1, "search", "e3", False, scores=(0.1, 0.3, 0.8)),
            _eval(1, "search", "e4", False, scores=(0.6, 0.4, None)),
            _eval(1, "search", "e5", True),  # unscored: counts for accuracy only
        ],
    )
    nodes = [
        # tree 10 (train): chosen path .9/T -> .4/F -> .8/T, siblings .1/F and .5/T at depth 1
        _node(1, "train", 10, 1, 1, 0.9, True, chosen=True),
        _node(1, "train", 10, 2, 1, 0.1, False),
        _node(1, "train", 10, 3, 1, 0.5, True),
        _node(1, "train", 10, 4, 2, 0.4, False, chosen=True, parent=1),
        _node(1, "train", 10, 5, 3, 0.8, True, chosen=True, parent=4),
        # tree 11 (train): chosen .7/T -> .6/T, sibling .55/F
        _node(1, "train", 11, 6, 1, 0.7, True, chosen=True),
        _node(1, "train", 11, 7, 2, 0.6, True, chosen=True, parent=6),
        _node(1, "train", 11, 8, 2, 0.55, False, parent=6),
        # tree 12 (eval): chosen .3/T -> .9/F
        _node(1, "eval", 12, 9, 1, 0.3, True, chosen=True),
        _node(1, "eval", 12, 10, 2, 0.9, False, chosen=True, parent=9),
        # tree 13 (eval): .2/F chosen then rolled back; then .6/T -> .45/T
        _node(1, "eval", 13, 11, 1, 0.2, False, chosen=True, rolled=True),
        _node(1, "eval", 13, 12, 1, 0.6, True, chosen=True),
        _node(1, "eval", 13, 13, 2, 0.45, True, chosen=True, parent=12),
        # tree 14 (eval): a chosen step without a step check -> not a ProcessBench path, not a detection row
        _node(1, "eval", 14, 14, 1, 0.7, None, chosen=True),
        # tree 15 (greedy): never judged -> skipped everywhere
        _node(1, "greedy", 15, 15, 1, None, True, chosen=True),
        # tree 16 (train): one chosen step .8/F
        _node(1, "train", 16, 16, 1, 0.8, False, chosen=True),
    ]
    store.append_rows("nodes", nodes)
    store.append_rows(
        "judgments",
        [
            # tree 10 pairs: (1,2) consistent; (1,3) inconsistent; (2,3) order 0 unparseable
            _judgment(1, "train", 0, 10, 1, 2, 0, "A"),
            _judgment(1, "train", 1, 10, 2, 1, 1, "B"),
            _judgment(1, "train", 2, 10, 1, 3, 0, "A"),
            _judgment(1, "train", 3, 10, 3, 1, 1, "A"),
            _judgment(1, "train", 4, 10, 2, 3, 0, None),
            _judgment(1, "train", 5, 10, 3, 2, 1, "A"),
            # tree 12 (eval) pair: consistent
            _judgment(1, "eval", 6, 12, 9, 10, 0, "B"),
            _judgment(1, "eval", 7, 12, 10, 9, 1, "A"),
            # tree 11: order 1 never written -> not a pair in judge_pairs
            _judgment(1, "train", 8, 11, 7, 8, 0, "A"),
            # a pointwise judgment: not a pair
            {
                **_judgment(1, "train", 9, 11, 6, 6, 0, None, mode="pointwise"),
                "node_b": None,
                "verdict": "Yes",
            },
            # held-out pairs; order 1 rows carry the swapped expected letter (as search.py writes them)
            _judgment(1, "eft_test", 100, None, 1000, 1001, 0, "A", "A"),
            _judgment(1, "eft_test", 101, None, 1001, 1000, 1, "B", "B"),  # pair 1 right
            _judgment(1, "eft_test", 102, None, 1002, 1003, 0, "B", "B"),
            _judgment(1, "eft_test", 103, None, 1003, 1002, 1, "B", "A"),  # pair 2 inconsistent
            _judgment(1, "eft_test", 104, None, 1004, 1005, 0, None, "A"),
            _judgment(1, "eft_test", 105, None, 1005, 1004, 1, "B", "B"),  # pair 3 unparseable first
            _judgment(1, "eft_test", 106, None, 1006, 1007, 0, "B", "B"),  # pair 4: order 1 missing
            _judgment(
                1, "eft_test", 108, None, 1008, 1009, 0, "A", None
            ),  # no expected verdict: not a test pair
        ],
    )

    # --- iteration 2: search evals only, all correct
    store.append_rows(
        "evals",
        [
            _eval(2, "search", "e1", True, scores=(1.0, 1.0, 1.0)),
            _eval(2, "search", "e2", True, scores=(0.8, 0.9, 0.8)),
        ],
    )
    store.flush()
    for it, stage, wall in [
        (0, "eval", 3.0),
        (1, "search", 10.5),
        (1, "train", 20.0),
        (1, "train", 1.0),
        (1, "eval", 4.5),
    ]:
        store.flush(StageDone(it, stage, wall))
    return store


@pytest.fixture()
def run(tmp_path: Path) -> RunStore:
    return build_run(tmp_path / "run.duckdb")


def test_summarize_iteration_1_by_hand(run: RunStore) -> None:
    s = summarize_iteration(run.path, 1)
    expected = {
        "accuracy_greedy": 2 / 4,  # e1, e3 right; e2 wrong; e4 no answer = wrong
        "accuracy_search": 3 / 5,  # e1, e2, e5
        # Wilson 95 % intervals of 2/4 and 3/5 (hand-checked against the closed form)
        "accuracy_greedy_low": 0.15003899,
        "accuracy_greedy_high": 0.84996101,
        "accuracy_search_low": 0.23072428,
        "accuracy_search_high": 0.88237923,
        # paired on e1..e4: search T T F F - greedy T F T F = 0, +1, -1, 0 -> mean 0, sd sqrt(2/3)
        # -> half-width 1.96 * sqrt(2/3 / 4) = 0.80015 (e5 has no greedy row: not in the pairs)
        "search_gain": 0.0,
        "search_gain_low": -0.80015195,
        "search_gain_high": 0.80015195,
        "n_eval_greedy": 4,
        "n_eval_search": 5,
        "steps_per_solution": 8 / 3,  # (2 + 3 + 3) / 3, e4 has no length
        "tokens_per_step": 90 / 8,
        # min: pos .2,.6 vs neg .1,.6 -> wins .2>.1, .6>.1, tie .6=.6, loss .2<.6 = 2.5 / 4
        "auroc_min": 0.625,
        "auroc_mean": 1.0,  # pos .5,.7 above neg .3,.4
        "auroc_last": 0.75,  # e4 has no last score: pos .9,.8 vs neg .8 -> (1 + .5) / 2
        # min bins: {.1 F}: .1; {.2 T}: .8; {.6 T, .6 F}: |.5-.6| = .1 twice -> (.1 + .8 + .2) / 4
        "ece_min": 0.275,
        "ece_mean": (0.5 + 0.3 + 0.3 + 0.4) / 4,  # each in its own bin
        "ece_last": (0.1 + 2 * 0.3) / 3,  # {.9 T}: .1; {.8 T, .8 F}: .3 each
        # eft: pair 1 right; 2 inconsistent; 3 unparseable; 4 no order 1 -> 1/4; first order: 1, 2, 4 -> 3/4
        "judge_accuracy": 0.25,
        "judge_accuracy_order0": 0.75,
        "n_eft_pairs": 4,
        # pairs (1,2) consistent, (1,3) not, (2,3) unparseable, tree 12 consistent -> 2 / 4
        "judge_consistency": 0.5,
        "n_judge_pairs": 4,
        # judged + checked nodes: 14. flagged (< .5): .1F .4F .3T .2F .45T -> 5, of which 3 wrong;
        # wrong: .1 .4 .55 .9 .2 .8 -> 6
        "judge_step_precision": 3 / 5,
        "judge_step_recall": 3 / 6,
        "n_judged_steps": 14,
        # correct .9 .5 .8 .7 .6 .3 .6 .45 vs wrong .1 .4 .55 .9 .2 .8: negatives below each positive
        # (ties 1/2) 5.5 + 3 + 4.5 + 4 + 4 + 2 + 4 + 3 = 30 of 8 * 6
        "judge_step_auroc": 30 / 48,
        # paths: t10 (pred 2, true 2) err right; t11 (None, None) ok right; t12 (1, 2) err wrong;
        # t13 without the rolled-back step (2, None) ok wrong; t16 (None, 1) err wrong
        # -> acc_err 1/3, acc_ok 1/2, F1 = 2 * 1/3 * 1/2 / (5/6) = 0.4
        "processbench_f1": 0.4,
        "processbench_acc_erroneous": 1 / 3,
        "processbench_acc_correct": 1 / 2,
        "n_paths": 5,
    }
    assert set(s) == set(expected)
    for key, value in expected.items():
        assert s[key] == pytest.approx(value), key
    assert set(s) <= set(METRICS)


def test_summarize_leaves_out_absent_metrics(run: RunStore) -> None:
    s0 = summarize_iteration(run.path, 0)
    # only greedy evals and one-order eft pairs: a real 0 accuracy, no judge_accuracy (one order only)
    assert s0 == pytest.approx(
        {
            "accuracy_greedy": 0.0,
            "accuracy_greedy_low": 0.0,
            "accuracy_greedy_high": 0.65761977,  # Wilson, 0 of 2
            "n_eval_greedy": 2,
            "steps_per_solution": 3.0,
            "tokens_per_step": 80 / 6,
            "judge_accuracy_order0": 0.5,
            "n_eft_pairs": 2,
        }
    )
    s2 = summarize_iteration(run.path, 2)
    # all search solutions correct: AUROC undefined, ECE defined; no greedy -> no gain
    assert s2 == pytest.approx(
        {
            "accuracy_search": 1.0,
            "accuracy_search_low": 0.34238023,  # Wilson, 2 of 2
            "accuracy_search_high": 1.0,
            "n_eval_search": 2,
            "ece_min": 0.1,
            "ece_mean": 0.05,
            "ece_last": 0.1,
        }
    )


def test_summarize_unknown_iteration_and_bad_file(run: RunStore, tmp_path: Path) -> None:
    assert run_iterations(run.path) == [0, 1, 2]
    with pytest.raises(EvaluationError, match="no rows for iteration 7"):
        summarize_iteration(run.path, 7)
    with pytest.raises(StoreError):
        summarize_iteration(tmp_path / "missing.duckdb", 0)


def test_write_summary_replaces_own_metrics_only(run: RunStore) -> None:
    run.append_rows("eval_metrics", [{"iteration": 1, "metric": "custom_metric", "value": 7.0}])
    run.flush()
    first = summarize_iteration(run.path, 1)
    assert write_summary(run, 1, first) == len(first)
    run.flush()
    assert stored_metrics(run.path)[1] == pytest.approx({**first, "custom_metric": 7.0})
    # a second summary without auroc_min replaces the first: no duplicates, no stale auroc_min
    second = {k: v for k, v in first.items() if k != "auroc_min"} | {"accuracy_greedy": 0.9, "ece_min": None}
    write_summary(run, 1, second)
    run.flush()
    rows = query_rows(
        run.path, "SELECT metric, count(*) FROM eval_metrics WHERE iteration = 1 GROUP BY metric"
    )
    counts = dict(rows)
    assert all(c == 1 for c in counts.values())
    assert "auroc_min" not in counts and "ece_min" not in counts and counts["custom_metric"] == 1
    assert stored_metrics(run.path)[1]["accuracy_greedy"] == pytest.approx(0.9)


def test_recompute_metrics_writes_every_iteration(run: RunStore) -> None:
    summaries = recompute_metrics(run.path)
    stored = stored_metrics(run.path)
    assert sorted(summaries) == [0, 1, 2]
    for it, summary in summaries.items():
        assert stored[it] == pytest.approx(summary)


def test_reliability_bins(run: RunStore) -> None:
    bins = reliability(run.path, 1, "min")
    filled = {i: (b.count, b.mean_score, b.accuracy) for i, b in enumerate(bins) if b.count}
    assert filled == {
        1: (1, pytest.approx(0.1), 0.0),
        2: (1, pytest.approx(0.2), 1.0),
        6: (2, pytest.approx(0.6), 0.5),
    }
    last = reliability(run.path, 1, "last", n_bins=2)  # e4 has no last score
    assert [(b.count, b.accuracy) for b in last] == [(0, None), (3, pytest.approx(2 / 3))]
    with pytest.raises(EvaluationError, match="unknown score aggregate"):
        reliability(run.path, 1, "max")
    with pytest.raises(PresrmError):
        reliability(run.path, 1, "min", n_bins=0)


def test_judge_table(run: RunStore) -> None:
    rows = {r.iteration: r for r in judge_table(run.path)}
    assert sorted(rows) == [0, 1]
    r0 = rows[0]
    assert (r0.n_pairs, r0.accuracy, r0.accuracy_order0, r0.consistency, r0.unparseable) == (
        2,
        None,
        0.5,
        None,
        0.0,
    )
    r1 = rows[1]
    assert r1.n_pairs == 4
    assert r1.accuracy == pytest.approx(0.25)
    assert r1.accuracy_order0 == pytest.approx(0.75)
    assert r1.consistency == pytest.approx(0.25)  # only pair 1 says the same candidate twice
    assert r1.unparseable == pytest.approx(1 / 7)  # 4 first-order + 3 stored second-order verdicts, one None


def test_write_report(run: RunStore, tmp_path: Path) -> None:
    out = tmp_path / "report"
    md = write_report(run.path, out)
    text = md.read_text(encoding="utf-8")
    assert md == out / "report.md"
    assert "| metric | M0 | M1 | M2 | meaning |" in text
    assert "| accuracy_greedy | 0.0% [0.0, 65.8] | 50.0% [15.0, 85.0] | – |" in text
    assert "| processbench_f1 | – | 0.400 | – |" in text
    # Table 3: model, pairs, both orders, first order, consistency, unparseable
    assert "| M1 | 4 | 25.0% | 75.0% | 25.0% | 14.3% |" in text
    assert "| M0 | 2 | – | 50.0% | – | 0.0% |" in text
    # stage wall times: the two train rows of M1 are summed
    assert "| iteration | search | train | eval | total |" in text
    assert "| M1 | 10.5 | 21.0 | 4.5 | 36.0 |" in text
    assert "| **total** | 10.5 | 21.0 | 7.5 | **39.0** |" in text
    for png in ("accuracy.png", "reliability.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
        assert f"]({png})" in text


def test_write_report_empty_run(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "empty.duckdb", RunConfig(model="tiny"))
    md = write_report(store.path, tmp_path / "out")
    text = md.read_text(encoding="utf-8")
    assert "No evaluation rows yet." in text
    assert "No held-out pairs judged by the LLM judge" in text
    assert "No finished stages." in text
    assert not (tmp_path / "out" / "accuracy.png").exists()
    assert not (tmp_path / "out" / "reliability.png").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ReportError, match="cannot create"):
        write_report(store.path, blocker)


def test_pointwise_judge_is_measured_on_held_out_steps_apart_from_table_3(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path / "point.duckdb", RunConfig(model="tiny"))
    store.append_rows("iterations", [{"iteration": 1, "model_name": "M1"}])

    def point(jid: int, node: int, p_yes: float, expected: str | None, phase: str = "eft_test") -> dict:
        row = _judgment(
            1, phase, jid, None, node, node, 0, "Yes" if p_yes >= 0.5 else "No", expected, "pointwise"
        )
        return {**row, "node_b": None, "p_a": p_yes, "p_b": 1 - p_yes}

    store.append_rows(
        "judgments",
        [
            point(0, 10, 0.9, "Yes"),  # right
            point(1, 11, 0.6, "No"),  # wrong
            point(2, 12, 0.4, "Yes"),  # wrong
            point(3, 13, 0.2, "No"),  # right
            point(4, 14, 0.7, "Yes"),  # right
            point(5, 15, 0.1, "Yes", phase="train"),  # a search judgment: not held out
            point(6, 16, 0.1, None),  # no label: not measured
        ],
    )
    store.flush()
    s = summarize_iteration(store.path, 1)
    assert s["n_pointwise_steps"] == 5
    assert s["pointwise_accuracy"] == pytest.approx(3 / 5)
    # Yes .9 .4 .7 vs No .6 .2: of 6 (Yes, No) pairs only .4 < .6 is ranked wrong.
    assert s["pointwise_auroc"] == pytest.approx(5 / 6)
    assert "judge_accuracy" not in s and "n_eft_pairs" not in s  # nothing beside Table 3
    text = write_report(store.path, tmp_path / "report").read_text(encoding="utf-8")
    assert "No held-out pairs judged by the LLM judge" in text
    assert "## Pointwise judge on held-out steps" in text
    assert "| M1 | 5 | 60.0% | 0.833 |" in text
