"""Adversarial model output: stored verbatim, and nothing downstream breaks on it.

The texts come out of the real code path: ``presrm.run.start.start_run`` runs the eval stage of the
tiny model, whose greedy search samples every step with a real forward pass through the real
sampler (``presrm.model.generation``), and whose judge writes its check the same way. Only the
model's output logits are biased (a forward hook, like a LogitsProcessor) so that it spells
chosen strings: empty, endless (runs into the token limit), Rich/Textual markup, SQL quotes,
format strings, backslashes. The tiny model's character vocabulary has no control characters,
so one more tree, with ESC/BEL/DEL/C1 characters in its step, is written through the real
writer exactly as the search writes one (``search.node_columns`` -> ``RunStore``).

Then: ``presrm sql`` (csv/json exact, table without markup and without raw control
characters), ``presrm export`` round-trips every table, ``presrm report`` runs, and the
inspector shows the literal text.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import torch
from test_tui import SIZE, rendered, settle, table_column
from textual.widgets import DataTable, Static

from presrm.display import visible
from presrm.store.reader import query_arrow, query_rows
from presrm.store.writer import RunStore

MARKUP = "[bold]x[/] [link=https://e.x/?q='1']y[/link] [/] [@click=app.quit]q[/] [red :thumbs_up:"
SQL = "'); DROP TABLE nodes; -- \"x\" '' `id` $(id)"
FORMATS = "{} {0} {x!r} %s %d %(x)s \\ \\n \\\\ <b>&amp;</b>"
ENDLESS = "[/]{%s}\\"  # repeated without a newline until the token limit cuts it
FINAL = "The answer is [red]7[/]{0}%s."
JUDGE = "Check: [bold]A[/] {0} %s '); DROP TABLE judgments; -- \\ [[A]]"
MAX_TOKENS = 90
# What the model writes, one entry per generate_steps call: the greedy eval of problem 1 (max_steps=5),
# of problem 2 (its first step is final), then the judge on the held-out pair (both orders at once).
SCRIPT: list[str | None] = ["", MARKUP, SQL, FORMATS, None, FINAL, JUDGE]
CONTROL_RAW = "esc\x1b[31mred\x1b[0m bel\x07 bs\x08 del\x7f csi\x9b2J osc\x1b]8;;http://e.x\x1b\\link\x1b]8;;\x1b\\ \u202eabc"

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "1000"}


class Speller:
    """A forward hook that makes the model spell the script, one string per generation call.

    Adds +1e4 to the logit of the next character (then the newline that ends a step) at every
    cached decoding step; ``None`` repeats ENDLESS forever. Scoring calls (no KV cache) pass
    through untouched.
    """

    def __init__(self, tokenizer: Any, script: list[str | None]) -> None:
        self.tokenizer = tokenizer
        self.script = list(script)
        self.used: list[str | None] = []
        self.text: str | None = None
        self.offset = 0

    def _char(self) -> str:
        if self.text is None:
            return ENDLESS[self.offset % len(ENDLESS)]
        return (self.text + "\n")[min(self.offset, len(self.text))]

    def __call__(self, module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> Any:
        if kwargs.get("use_cache") is not True:
            return output
        if kwargs["input_ids"].shape[1] > 1:  # a prefill: a new generation call begins
            self.text = self.script.pop(0)
            self.used.append(self.text)
            self.offset = 0
        else:
            self.offset += 1
        bias = torch.zeros(output.logits.shape[-1], dtype=output.logits.dtype, device=output.logits.device)
        bias[self.tokenizer.convert_tokens_to_ids(self._char())] = 1e4
        output.logits = output.logits + bias
        return output


@dataclass
class AdversarialRun:
    path: Path
    speller: Speller
    control_tree: int
    control_text: str


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> AdversarialRun:
    import presrm.run.start
    from presrm.config import load_config
    from presrm.model.loading import load_policy
    from presrm.search.tree import Node, Tree
    from presrm.steps import parse_step
    from presrm.store.rows import node_columns
    from presrm.tasks.base import Problem

    path = tmp_path_factory.mktemp("adversarial") / "run.duckdb"
    cfg = load_config(
        None,
        [
            "model=tiny",
            "iterations=0",
            "eval_problems=2",
            "max_steps=5",
            "batch_problems=1",
            f"sampling.max_step_tokens={MAX_TOKENS}",
            "warmup.enabled=false",
            "warmup.eft_test_examples=1",
            "eval_search=false",
            "judge.mode='pairwise'",
            "judge.check=true",
            "judge.verdict='text'",
            f"judge.max_judge_tokens={MAX_TOKENS}",
            f"out={json.dumps(str(path))}",
        ],
    )
    policy = load_policy("tiny", seed=cfg.seed)
    speller = Speller(policy.tokenizer, SCRIPT)
    policy.model.register_forward_hook(speller, with_kwargs=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(presrm.run.start, "load_policy", lambda *args, **kwargs: policy)
        presrm.run.start.start_run(cfg)

    # Control characters, which the tiny model cannot spell: one greedy tree written as the search
    # writes it (its problem row as the loop stores problems, the step normalized by parse_step).
    store = RunStore.open(path)
    problem = Problem("control-1", "What do control characters do?", "1", (), "test")
    store.append_rows(
        "problems",
        [
            {
                "problem_id": problem.problem_id,
                "split": "eval",
                "iteration": 0,
                "question": problem.question,
                "answer": problem.answer,
                "reference_steps": [],
                "source": problem.source,
            }
        ],
    )
    parsed = parse_step(CONTROL_RAW, 1)
    tree = Tree(store.new_ids("tree", 1)[0], problem)
    tree.nodes.append(
        Node(
            store.new_ids("node", 1)[0],
            None,
            1,
            0,
            parsed.text,
            len(CONTROL_RAW),
            -1.0,
            "newline",
            parsed.status,
            parsed.is_final,
            parsed.final_answer,
            None,
            None,
            chosen=True,
        )
    )
    tree.path.append(tree.nodes[0])
    store.append_columns("nodes", node_columns([tree], iteration=0, phase="greedy"))
    store.flush()
    return AdversarialRun(path, speller, tree.tree_id, parsed.text)


def presrm(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "presrm.cli", *args], capture_output=True, text=True, env=ENV, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result


NODES_SQL = "SELECT node_id, text, final_answer FROM nodes ORDER BY node_id"


def test_model_output_is_stored_verbatim(run: AdversarialRun) -> None:
    assert run.speller.script == [] and run.speller.used == SCRIPT, (
        "every scripted generation happened, in order"
    )
    rows = query_rows(
        run.path,
        "SELECT problem_id, depth, text, finish, parse_status, final_answer "
        "FROM nodes WHERE phase = 'greedy' ORDER BY node_id",
    )
    first, second = rows[0][0], rows[5][0]
    endless = (ENDLESS * MAX_TOKENS)[:MAX_TOKENS]
    assert rows[:6] == [
        (first, 1, "Step 1:", "newline", "empty", None),
        (first, 2, f"Step 2: {MARKUP}", "newline", "ok", None),
        (first, 3, f"Step 3: {SQL}", "newline", "ok", None),
        (first, 4, f"Step 4: {FORMATS}", "newline", "ok", None),
        (first, 5, f"Step 5: {endless}", "length", "runaway", None),
        (second, 1, f"Step 1: {FINAL}", "newline", "final", "[red]7[/]{0}%s"),
    ]
    assert rows[6][2] == run.control_text and "\x1b[31m" in run.control_text and "\x9b" in run.control_text
    judgments = query_rows(
        run.path, "SELECT raw_output, check_text, verdict FROM judgments ORDER BY judgment_id"
    )
    assert judgments == [(JUDGE, JUDGE.removeprefix("Check: ").removesuffix(" [[A]]"), "A")] * 2
    evals = query_rows(run.path, "SELECT final_answer FROM evals ORDER BY problem_id = ?", [second])
    assert evals == [(None,), ("[red]7[/]{0}%s",)]
    # the quotes did nothing: every table is still there
    assert query_rows(run.path, "SELECT count(*) FROM stages")[0][0] == 1


def test_sql_prints_it_verbatim(run: AdversarialRun) -> None:
    stored = query_rows(run.path, NODES_SQL)
    as_json = json.loads(presrm("sql", str(run.path), NODES_SQL, "-f", "json").stdout)
    assert [(r["node_id"], r["text"], r["final_answer"]) for r in as_json] == stored
    as_csv = list(
        csv.reader(io.StringIO(presrm("sql", str(run.path), NODES_SQL, "-f", "csv").stdout, newline=""))
    )
    assert as_csv[1:] == [[str(i), t, "" if a is None else a] for i, t, a in stored]
    table = presrm("sql", str(run.path), NODES_SQL, "--limit", "0").stdout
    assert "\x1b" not in table and "\x9b" not in table, "control characters never reach the terminal raw"
    for _, text, _ in stored:
        assert visible(text) in table  # markup and emoji codes shown as written, not interpreted
    assert "\\x1b[31mred" in table


def test_export_round_trips(run: AdversarialRun, tmp_path: Path) -> None:
    files = presrm("export", str(run.path), "--to", str(tmp_path / "out")).stdout.split()
    assert len(files) >= 10
    for name in files:
        table = Path(name).stem
        want = query_arrow(run.path, f"SELECT * FROM {table}")
        assert pq.read_table(name).to_pylist() == want.to_pylist(), table


def test_report_runs(run: AdversarialRun, tmp_path: Path) -> None:
    report = Path(presrm("report", str(run.path), "--out", str(tmp_path / "report")).stdout.strip())
    assert report.is_file() and "M0" in report.read_text()


def _compact(text: str) -> str:
    """Without any whitespace: the screen wraps long lines anywhere."""
    return "".join(text.split())


def test_inspector_shows_it_literally(run: AdversarialRun) -> None:
    from presrm.tui.app import InspectorApp
    from presrm.tui.widgets.reasoning_tree import ReasoningTree

    steps = query_rows(
        run.path, "SELECT tree_id, node_id, text FROM nodes WHERE phase = 'greedy' ORDER BY node_id"
    )
    eft_tree, eft_node = query_rows(run.path, "SELECT tree_id, min(node_a) FROM judgments GROUP BY 1")[0]

    async def main() -> None:
        app = InspectorApp(run.path, refresh_interval=None)
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("2")
            await settle(pilot)
            problems = app.screen.query_one("#problems-table", DataTable)
            assert "[red]7[/]{0}%s" in table_column(problems, "final_answer")
            for tree_id, node_id, text in steps:
                app.open_tree(tree_id)
                await settle(pilot)
                tree = app.screen.query_one(ReasoningTree)
                tree.select_step(node_id)
                await settle(pilot)
                info = rendered(app.screen.query_one("#node-info", Static))
                assert _compact(visible(text)) in _compact(info), text
                assert "\x1b" not in info and "\x1b" not in rendered(tree)
            app.open_tree(eft_tree, eft_node)
            await settle(pilot)
            assert _compact(JUDGE) in _compact(rendered(app.screen.query_one("#judgment-info", Static)))

    asyncio.run(main())
