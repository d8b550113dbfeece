"""Build a realistic presrm run database for the inspector's tests and benchmark.

The run is simulated (no model): arithmetic problems solved step by step, ``width``
candidate next steps per expansion, pairwise self-judgments in both orders with a
position bias (so some pairs are inconsistent) and some unparseable outputs, win-rate
self-scores, chosen/rejected steps, rollbacks when all candidates tie, a step checker,
final answers checked against the ground truth, unjudged greedy solutions,
held-out EFT judge pairs, evals and eval_metrics (some metrics deliberately left out
so the inspector has to compute them from the rows).

Everything is written through :class:`presrm.store.writer.RunStore` with batched
column appends, exactly like a real run. Deterministic for a given seed: the run id
and timestamps are fixed too, so snapshot tests are stable.

A later version of this module will build the fixture from a real tiny-model search;
keep the signature of :func:`build_run_db`.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from presrm.config import RunConfig
from presrm.eval.evaluate import summarize_iteration, write_summary
from presrm.store.db import connect
from presrm.store.writer import RunStore, StageDone

FIXTURE_RUN_ID = "fixture-run-0"
T0 = dt.datetime(2025, 3, 1, 12, 0, 0)
MARKUP_STEP = "Step 1: [bold]3[/] + 4 = 7, so \\frac{a}[b] holds [/] [red]"
"""A step text full of Rich/Textual markup; the inspector must show it verbatim."""
MARKUP_RAW = "Check: [bold]A[/] is right, {0} [[A]]"
"""A judge output with markup and format-string braces (the markup tree's first judgment)."""

OPS = [("+", lambda a, b: a + b), ("-", lambda a, b: a - b), ("*", lambda a, b: a * b)]


@dataclass
class _Buffers:
    """Column buffers per table, flushed every few hundred trees."""

    cols: dict[str, dict[str, list[Any]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    rows: int = 0

    def add(self, table: str, **values: Any) -> None:
        cols = self.cols[table]
        n = len(next(iter(cols.values()))) if cols else 0
        for key in set(cols) | set(values):
            col = cols[key]
            if len(col) < n:  # a key this row's predecessors did not have
                col.extend([None] * (n - len(col)))
            col.append(values.get(key))
        self.rows += 1

    def drain(self, store: RunStore) -> None:
        for table, cols in self.cols.items():
            n = max(len(c) for c in cols.values())
            for c in cols.values():
                c.extend([None] * (n - len(c)))
            store.append_columns(table, dict(cols))
        self.cols.clear()
        self.rows = 0


@dataclass
class _Problem:
    problem_id: str
    question: str
    start: int
    ops: list[tuple[str, int]]
    answer: int
    split: str


def _make_problem(rng: random.Random, i: int, split: str) -> _Problem:
    start = rng.randint(2, 40)
    ops: list[tuple[str, int]] = []
    value = start
    words = [f"Start with {start}."]
    for _ in range(rng.choice((2, 2, 3))):
        sym, fn = rng.choice(OPS)
        arg = rng.randint(2, 9)
        ops.append((sym, arg))
        value = fn(value, arg)
        words.append({"+": f"add {arg}", "-": f"subtract {arg}", "*": f"multiply by {arg}"}[sym] + ".")
    qid = f"{split}-{i:05d}"
    question = " ".join(w[:1].upper() + w[1:] for w in words) + " What is the result?"
    return _Problem(qid, question, start, ops, value, split)


def _apply(sym: str, a: int, b: int) -> int:
    return dict((s, f) for s, f in OPS)[sym](a, b)


class _Simulator:
    """Simulates one search tree at a time and buffers its rows."""

    def __init__(self, store: RunStore, buf: _Buffers, rng: random.Random, max_steps: int) -> None:
        self.store = store
        self.buf = buf
        self.rng = rng
        self.max_steps = max_steps

    # ---- one candidate step ------------------------------------------------------------
    def _candidate(self, prob: _Problem, depth: int, value: int, p_right: float) -> tuple[str, int, bool]:
        sym, arg = prob.ops[depth - 1]
        right = _apply(sym, value, arg)
        ok = self.rng.random() < p_right
        claimed = right if ok else right + self.rng.choice((-3, -2, -1, 1, 2, 10))
        text = f"Step {depth}: {value} {sym} {arg} = {claimed}"
        if depth == len(prob.ops):
            text += f". The answer is {claimed}."
        return text, claimed, ok

    # ---- one tree -------------------------------------------------------------------------
    def tree(self, prob: _Problem, iteration: int, phase: str, width: int, *, markup: bool = False) -> dict:
        """Simulate and buffer one tree; returns its chosen-path summary for evals."""
        rng = self.rng
        tree_id = self.store.new_ids("tree", 1)[0]
        p_right = min(0.9, 0.55 + 0.1 * iteration) + (0.1 if width == 1 else 0.0)  # greedy: the mode
        p_judge = min(0.92, 0.6 + 0.1 * iteration)
        base = dict(iteration=iteration, phase=phase, problem_id=prob.problem_id, tree_id=tree_id)
        path: list[dict] = []  # accepted steps: dicts with node_id, value, score
        expansion = 0
        final: dict | None = None
        while expansion < self.max_steps:
            expansion += 1
            depth = len(path) + 1
            value = path[-1]["value"] if path else prob.start
            parent = path[-1]["node_id"] if path else None
            ids = list(self.store.new_ids("node", width))
            cands: list[dict[str, Any]] = []
            for k, node_id in enumerate(ids):
                text, claimed, ok = self._candidate(prob, depth, value, p_right)
                if markup and expansion == 1 and k == 0:
                    text = MARKUP_STEP
                cands.append(dict(node_id=node_id, text=text, value=claimed, ok=ok))
            if width == 1:
                scores: list[float | None] = [None]  # greedy decoding: one candidate, never judged
            else:
                scores = list(self._pairwise(base, cands, p_judge, markup=markup and expansion == 1))
            vals = [0.0 if v is None else v for v in scores]
            best = max(range(width), key=lambda i: (vals[i], -i))
            worst = min(range(width), key=lambda i: (vals[i], i))
            tie = width > 1 and max(vals) == min(vals)
            is_last = depth == len(prob.ops)
            for i, c in enumerate(cands):
                is_final = is_last and "answer" in c["text"]
                self.buf.add(
                    "nodes",
                    **base,
                    node_id=c["node_id"],
                    parent_id=parent,
                    depth=depth,
                    expansion=expansion,
                    text=c["text"],
                    n_tokens=len(c["text"]) // 3 + 1,
                    logprob=-round(rng.uniform(0.5, 9.0), 3),
                    finish="newline",
                    self_score=scores[i],
                    score_kind=None if width == 1 else "win_rate",
                    soft_score=None if scores[i] is None else 0.25 + 0.5 * scores[i],
                    chosen=(i == best and not tie),
                    rejected=(i == worst and not tie and width > 1),
                    rolled_back=False,
                    is_final=is_final,
                    final_answer=str(c["value"]) if is_final else None,
                    parse_status="final" if is_final else "ok",
                    correct=(c["value"] == prob.answer) if is_final else None,
                    step_check=c["ok"],
                )
            if tie:
                # All candidates tied: drop the previous accepted step and roll back one step.
                if path:
                    # (A real run queues an UPDATE; the row is still buffered here.)
                    dropped = path.pop()
                    self.buf.cols["nodes"]["rolled_back"][self._row_of(dropped["node_id"])] = True
                continue
            chosen = cands[best]
            path.append(dict(node_id=chosen["node_id"], value=chosen["value"], score=scores[best]))
            if is_last:
                final = chosen
                break
        steps = [p["score"] for p in path if p["score"] is not None]
        return dict(
            tree_id=tree_id,
            finished=final is not None,
            final_answer=str(final["value"]) if final else None,
            correct=(final["value"] == prob.answer) if final else None,
            n_steps=len(path),
            min_score=min(steps) if steps else None,
            mean_score=sum(steps) / len(steps) if steps else None,
            last_score=steps[-1] if steps else None,
        )

    def _row_of(self, node_id: int) -> int:
        ids = self.buf.cols["nodes"]["node_id"]
        for row in range(len(ids) - 1, -1, -1):
            if ids[row] == node_id:
                return row
        raise KeyError(node_id)

    # ---- judging --------------------------------------------------------------------------
    def _pairwise(self, base: dict, cands: list[dict], p_judge: float, *, markup: bool) -> list[float]:
        rng = self.rng
        n = len(cands)
        wins = [0.0] * n
        biased = rng.random() < 0.08  # a judge that always says A: every pair inconsistent -> tie
        first = True
        for i in range(n):
            for j in range(i + 1, n):
                winners = []
                liked = rng.choice((i, j))  # the judge's taste between two equally right (or wrong) steps
                for order, (a, b) in enumerate(((i, j), (j, i))):
                    ca, cb = cands[a], cands[b]
                    expected = None if ca["ok"] == cb["ok"] else ("A" if ca["ok"] else "B")
                    r = rng.random()
                    if biased:
                        verdict: str | None = "A"
                    elif r < 0.05:
                        verdict = None
                    elif expected is not None:
                        verdict = expected if rng.random() < p_judge else ("B" if expected == "A" else "A")
                    elif rng.random() < 0.3:
                        verdict = "A"  # position bias
                    else:
                        verdict = "A" if a == liked else "B"
                    check = f"{ca['text'].split(': ', 1)[-1]} vs {cb['text'].split(': ', 1)[-1]}"
                    if verdict is None:
                        raw = f"Check: {check}. Both look [fine] to me"
                    else:
                        raw = f"Check: {check}. [[{verdict}]]"
                    if markup and first:
                        raw, first = MARKUP_RAW, False
                        verdict = "A"
                    pa_ = None if verdict is None else round(rng.uniform(0.55, 0.99), 3)
                    if pa_ is not None and verdict == "B":
                        pa_ = round(1 - pa_, 3)
                    winner = None if verdict is None else (ca if verdict == "A" else cb)["node_id"]
                    winners.append(winner)
                    self.buf.add(
                        "judgments",
                        iteration=base["iteration"],
                        phase=base["phase"],
                        judgment_id=self.store.new_ids("judgment", 1)[0],
                        tree_id=base["tree_id"],
                        mode="pairwise",
                        node_a=ca["node_id"],
                        node_b=cb["node_id"],
                        order=order,
                        check_text=None if verdict is None else check,
                        raw_output=raw,
                        verdict=verdict,
                        p_a=pa_,
                        p_b=None if pa_ is None else round(1 - pa_, 3),
                        winner=winner,
                        expected=expected,
                    )
                if winners[0] is not None and winners[0] == winners[1]:
                    wins[i if winners[0] == cands[i]["node_id"] else j] += 1.0
                else:
                    wins[i] += 0.5
                    wins[j] += 0.5
        return [round(w / (n - 1), 4) for w in wins]

    def eft_test(self, iteration: int, problems: list[_Problem], n: int) -> None:
        """Held-out judge pairs as presrm.eval.judge_eval stores them: a two-node tree per pair, both orders."""
        rng = self.rng
        p_judge = min(0.92, 0.6 + 0.1 * iteration)
        for k in range(n):
            prob = problems[k % len(problems)]
            sym, arg = prob.ops[0]
            right = _apply(sym, prob.start, arg)
            good = f"Step 1: {prob.start} {sym} {arg} = {right}"
            bad = f"Step 1: {prob.start} {sym} {arg} = {right + rng.choice((-2, -1, 1, 3))}"
            verdict = rng.choice("AB")
            step_a, step_b = (good, bad) if verdict == "A" else (bad, good)
            tree_id = self.store.new_ids("tree", 1)[0]
            a, b = self.store.new_ids("node", 2)
            for node_id, text, ok in ((a, step_a, verdict == "A"), (b, step_b, verdict == "B")):
                self.buf.add(
                    "nodes",
                    iteration=iteration,
                    phase="eft_test",
                    problem_id=prob.problem_id,
                    tree_id=tree_id,
                    node_id=node_id,
                    parent_id=None,
                    depth=1,
                    expansion=0,
                    text=text,
                    chosen=False,
                    rejected=False,
                    rolled_back=False,
                    is_final=False,
                    step_check=ok,
                )
            for order, (x, y) in enumerate(((a, b), (b, a))):
                expected = verdict if order == 0 else ("B" if verdict == "A" else "A")
                r = rng.random()
                said: str | None = (
                    None
                    if r < 0.05
                    else (expected if rng.random() < p_judge else ("B" if expected == "A" else "A"))
                )
                self.buf.add(
                    "judgments",
                    iteration=iteration,
                    phase="eft_test",
                    judgment_id=self.store.new_ids("judgment", 1)[0],
                    tree_id=tree_id,
                    mode="pairwise",
                    node_a=x,
                    node_b=y,
                    order=order,
                    check_text=None,
                    raw_output="unclear" if said is None else f"[[{said}]]",
                    verdict=said,
                    p_a=None,
                    p_b=None,
                    winner=None if said is None else (x if said == "A" else y),
                    expected=expected,
                )


def build_run_db(
    path: Path,
    *,
    n_problems: int = 8,
    eft_pairs: int = 8,
    iterations: int = 3,
    seed: int = 0,
    width: int = 4,
    eval_width: int = 4,
    max_steps: int = 10,
    flush_every: int = 500,
    markup_tree: bool = True,
) -> Path:
    """Write a simulated run to ``path`` (which must not exist) and return it.

    Iteration 0 (M0) is only evaluated; iterations 1.. run the self-rewarding search
    on ``n_problems`` training problems (``width`` candidates per step) and evaluate
    on as many eval problems, with test-time search (``eval_width``) and greedy
    decoding (unjudged), and judge ``eft_pairs`` held-out EFT pairs
    in both orders. eval_metrics come from presrm.eval.evaluate as in the loop, except that
    the last iteration lacks ``judge_accuracy`` and ``auroc_min``.
    With ``markup_tree`` the first training tree of iteration 1 starts with a step
    made of markup (:data:`MARKUP_STEP`).
    """
    path = Path(path)
    rng = random.Random(seed)
    store = RunStore.create(path, RunConfig(width=max(2, width), iterations=max(0, iterations - 1)))
    con = connect(path, read_only=False)
    try:
        con.execute("UPDATE runs SET run_id = ?, created_at = ?", [FIXTURE_RUN_ID, T0])
    finally:
        con.close()
    store.run_id = FIXTURE_RUN_ID
    buf = _Buffers()
    sim = _Simulator(store, buf, rng, max_steps)
    train = [_make_problem(rng, i, "train") for i in range(n_problems)]
    evalp = [_make_problem(rng, i, "eval") for i in range(n_problems)]
    store.append_rows(
        "problems",
        [
            dict(
                problem_id=p.problem_id,
                split=p.split,
                iteration=0,
                question=p.question,
                answer=str(p.answer),
                reference_steps=None,
                source="fixture:arith",
            )
            for p in train + evalp
        ],
    )
    store.flush()
    clock = T0
    for it in range(iterations):
        started = clock
        if it >= 1:
            for k, prob in enumerate(train):
                sim.tree(prob, it, "train", width, markup=markup_tree and it == 1 and k == 0)
                if buf.rows >= flush_every * 40:
                    buf.drain(store)
                    store.flush()
            for s in range(8):
                store.append_rows(
                    "train_steps",
                    [
                        dict(
                            iteration=it,
                            stage="step-dpo",
                            step=s,
                            metric="loss",
                            value=round(0.69 - 0.03 * s, 4),
                        )
                    ],
                )
            buf.drain(store)
            clock += dt.timedelta(minutes=5)
            store.flush(StageDone(it, "search", 300.0, {"trees": len(train)}))
        for prob in evalp:
            for mode, phase, w in (("search", "eval", eval_width), ("greedy", "greedy", 1)):
                res = sim.tree(prob, it, phase, w)
                buf.add(
                    "evals",
                    iteration=it,
                    mode=mode,
                    problem_id=prob.problem_id,
                    tree_id=res["tree_id"],
                    final_answer=res["final_answer"],
                    correct=bool(res["correct"]),
                    n_steps=res["n_steps"],
                    n_tokens=res["n_steps"] * 8,
                    min_score=res["min_score"],
                    mean_score=res["mean_score"],
                    last_score=res["last_score"],
                )
            if buf.rows >= flush_every * 40:
                buf.drain(store)
                store.flush()
        sim.eft_test(it, evalp, eft_pairs)
        buf.drain(store)
        store.flush()
        # eval_metrics exactly as the loop writes them; the last iteration lacks two
        # (as if written by an older presrm), so the inspector has to compute them.
        summary = summarize_iteration(path, it)
        if it == iterations - 1 and iterations > 1:
            summary.pop("judge_accuracy", None)
            summary.pop("auroc_min", None)
        write_summary(store, it, summary)
        clock += dt.timedelta(minutes=2)
        store.append_rows(
            "iterations",
            [
                dict(
                    iteration=it,
                    model_name=f"M{it}",
                    checkpoint=None if it == 0 else f"ckpt/M{it}",
                    started_at=started,
                    finished_at=clock,
                )
            ],
        )
        store.flush(StageDone(it, "eval", 120.0, {"problems": len(evalp)}))
    return path


def build_empty_run(path: Path) -> Path:
    """A run file as ``presrm run`` leaves it before its first flush: identity and run row only."""
    RunStore.create(Path(path), RunConfig())
    return Path(path)
