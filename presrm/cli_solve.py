"""``presrm solve``: answer one question with the self-judged step search (test-time scaling).

Registered on the ``presrm`` app by presrm.cli (kept apart so that each module stays small).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.text import Text

from presrm.errors import PresrmError

console = Console()


def solve(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    model: Annotated[
        str, typer.Option(help="Model spec or checkpoint directory (e.g. RUN.ckpt/M2).")
    ] = "default",
    width: Annotated[int, typer.Option(help="Candidates per step; 1 = greedy step-by-step decoding.")] = 6,
    max_steps: Annotated[int, typer.Option(help="Step expansions, rollbacks included.")] = 20,
    temperature: Annotated[float, typer.Option(help="Sampling temperature of the candidates.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Keep other libraries' progress bars, warnings and logs.")
    ] = False,
) -> None:
    """Answer a question with self-judged best-of-width search per step (test-time scaling)."""
    from presrm.run.quiet import quiet_third_party

    quiet_third_party(verbose)  # before the imports below load those libraries
    from presrm.config import JudgeConfig
    from presrm.display import visible
    from presrm.model.loading import load_checkpoint, load_policy
    from presrm.search.judges import make_judge
    from presrm.search.tree import LocalIds, SearchSettings
    from presrm.search.tree_search import search
    from presrm.steps import resolve_step_format
    from presrm.tasks.base import Problem
    from presrm.tasks.free import FreeTask
    from presrm.train.default_recipe import ensure_model

    if width < 1:
        raise PresrmError(f"--width: expected a value >= 1, got {width}")
    path = Path(model)
    if not (path / "presrm_checkpoint.json").is_file():
        ensure_model(model)
    policy = load_checkpoint(path) if (path / "presrm_checkpoint.json").is_file() else load_policy(model)
    policy.step_format = resolve_step_format("auto", policy.chat)  # multi-line steps for chat models
    settings = SearchSettings(
        width=width, max_steps=max_steps, temperature=temperature if width > 1 else 0.0, seed=seed
    )
    task = FreeTask()
    judge = (
        make_judge(policy, JudgeConfig(), task, max_step_tokens=settings.max_step_tokens)
        if width > 1
        else None
    )
    problem = Problem("cli", question, "", (), "cli")
    (tree,) = search(policy, judge, task, [problem], settings, LocalIds())
    for node in tree.path:
        score = "" if node.self_score is None else f"  (self-score {node.self_score:.2f})"
        console.print(Text(visible(node.text) + score))
    final = tree.final
    console.print(
        Text(visible(f"answer: {final.final_answer}") if final else "no final answer within --max-steps")
    )
