"""``presrm export``: a run as Parquet, every table or its judged steps in a format TRL reads.

Registered on the ``presrm`` app by presrm.cli (kept apart so that each module stays small).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer


class ExportFormat(StrEnum):
    tables = "tables"
    trl_stepwise = "trl-stepwise"
    trl_preference = "trl-preference"


class LabelSource(StrEnum):
    checker = "checker"
    self = "self"
    flags = "flags"


def export(
    run_file: Annotated[Path, typer.Argument(help="Run file (.duckdb).")],
    to: Annotated[Path, typer.Option("--to", help="Directory for the Parquet file(s).")],
    flags: Annotated[
        bool,
        typer.Option(
            "--flags",
            help="Also write flags.jsonl: flagged judgments as EFT examples with corrected verdicts.",
        ),
    ] = False,
    fmt: Annotated[
        ExportFormat,
        typer.Option(
            "--format",
            help="tables: one Parquet file per table; trl-stepwise: TRL's stepwise supervision (a PRM's"
            " data); trl-preference: the step-DPO pairs as TRL's DPOTrainer reads them.",
        ),
    ] = ExportFormat.tables,
    labels: Annotated[
        LabelSource,
        typer.Option(help="trl-stepwise: step labels from the step checker, self-scores or flags."),
    ] = LabelSource.checker,
    threshold: Annotated[
        float, typer.Option(help="--labels self: a step is right at this self-score.")
    ] = 0.5,
    with_rejected: Annotated[
        bool, typer.Option("--with-rejected", help="trl-stepwise: a row per rejected sibling too.")
    ] = False,
    iteration: Annotated[int | None, typer.Option(help="trl-*: only this iteration's search.")] = None,
) -> None:
    """Export a run as Parquet: every table, or the judged steps in a format TRL's trainers read."""
    from presrm.store.flags import export_flags_jsonl
    from presrm.store.reader import export_parquet

    if fmt is ExportFormat.tables:
        for path in export_parquet(run_file, to):
            typer.echo(str(path))
    else:
        from presrm.store.trl_export import export_trl

        target, n = export_trl(
            run_file,
            to / f"{fmt.value}.parquet",
            fmt.value,  # type: ignore[arg-type]
            labels=labels.value,
            threshold=threshold,
            with_rejected=with_rejected,
            iteration=iteration,
        )
        typer.echo(f"{target} ({n} rows)")
    if flags:
        target = to / "flags.jsonl"
        n = export_flags_jsonl(run_file, target)
        typer.echo(f"{target} ({n} EFT examples; train on them with --set warmup.eft_jsonl=...)")
