"""The ``presrm`` command line (Typer). Thin: parses arguments, calls the library.

User mistakes (PresrmError) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from presrm import __version__
from presrm.cli_export import export
from presrm.cli_solve import solve
from presrm.errors import Interrupted, PresrmError

# Nothing presrm does may reach a model hub: models come from disk or are built here.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

app = typer.Typer(
    name="presrm",
    help="Process-based self-rewarding LMs: sample, self-judge each step, train, evaluate; every step score in DuckDB.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()

# What `presrm run` runs without a config file; shipped inside the package.
QUICKSTART = Path(__file__).resolve().parent / "quickstart.toml"
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"presrm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """presrm command line."""


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


@app.command()
def run(
    config: Annotated[
        Path | None,
        typer.Argument(help="TOML config file; omit to run the quick start (presrm/quickstart.toml)."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-s", help="Override a config key, e.g. --set width=4 --set train.lr=1e-4."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Run file to write (overrides config.out).")
    ] = None,
    resume: Annotated[
        Path | None, typer.Option("--resume", help="Continue this run file from its last finished stage.")
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", help="Keep other libraries' progress bars, warnings and logs.")
    ] = False,
) -> None:
    """Run the self-rewarding loop: warm-up, then per iteration search -> self-judge -> train -> evaluate."""
    from presrm.run.quiet import quiet_third_party

    quiet_third_party(verbose)  # before the imports below load those libraries
    from presrm.config import load_config
    from presrm.store.writer import read_identity

    if resume is not None:
        if config is not None or set_:
            raise PresrmError("--resume continues with the run's stored config; drop CONFIG and --set")
        read_identity(resume)  # a missing or damaged run file: one line before the slow imports below
    from presrm.run.start import resume_run, start_run

    if resume is not None:
        result = resume_run(resume)
    else:
        overrides = list(set_ or [])
        if out is not None:
            overrides.append(f"out={json.dumps(str(out))}")
        cfg = load_config(config if config is not None else QUICKSTART, overrides)
        result = start_run(cfg)
    if _rank() != 0:
        return  # a data-parallel run: rank 0 speaks for it
    from presrm.eval.closing import TITLE, closing_table

    table = closing_table(result)
    if table is not None:
        console.print(TITLE, soft_wrap=True, highlight=False, markup=False)
        console.print(table, width=None if console.is_terminal else 200)  # a log file: no wrapping
    console.print(f"run file: [bold]{result}[/bold]")
    console.print(
        Text.assemble(
            "next: ",
            (f"presrm inspect {result}", "cyan"),
            "  |  ",
            (f'presrm sql {result} "SELECT * FROM eval_metrics"', "cyan"),
        )
    )


@app.command()
def inspect(
    run_file: Annotated[Path, typer.Argument(help="Run file (.duckdb) to browse.")],
    web: Annotated[bool, typer.Option("--web", help="Serve the app to a browser on localhost.")] = False,
    port: Annotated[int, typer.Option(help="Port for --web.")] = 8000,
    compare: Annotated[
        Path | None,
        typer.Option(help="A second run file over the same held-out problems: side B of the compare tab."),
    ] = None,
) -> None:
    """Browse reasoning trees, compare self-scores with correctness, flag judge errors (Textual TUI)."""
    from presrm.store.db import open_run

    for path in (run_file, compare):
        if path is not None:
            with open_run(path):  # a clear one-line error before the TUI starts
                pass
    if web:
        from textual_serve.server import Server

        command = f"{sys.executable} -m presrm.tui {json.dumps(str(run_file))}"
        if compare is not None:
            command += f" --compare {json.dumps(str(compare))}"
        Server(command, host="localhost", port=port).serve()
        return
    from presrm.tui.app import InspectorApp

    InspectorApp(run_file, compare_file=compare).run()


@app.command()
def sql(
    run_file: Annotated[Path, typer.Argument(help="Run file (.duckdb).")],
    query: Annotated[
        str, typer.Argument(help='SQL to run read-only, e.g. "SELECT * FROM step_scores LIMIT 5".')
    ],
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Output format.")] = OutputFormat.table,
    limit: Annotated[int, typer.Option(help="Rows shown in table format (0 = all).")] = 200,
) -> None:
    """Run read-only SQL over a run (works while the run is being written).

    csv and json print values exactly; the table shows control characters as \\xNN escapes.
    """
    from presrm.display import visible
    from presrm.store.reader import query_arrow

    result = query_arrow(run_file, query)
    names = result.column_names
    rows = result.to_pylist()
    if fmt is OutputFormat.json:
        # color=True: click would otherwise strip ANSI-like sequences out of the values
        typer.echo(json.dumps(rows, default=str, ensure_ascii=False, indent=1), color=True)
    elif fmt is OutputFormat.csv:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(names)
        writer.writerows([[row[n] for n in names] for row in rows])
        typer.echo(buf.getvalue(), nl=False, color=True)
    else:
        table = Table(show_lines=False, header_style="bold")
        for name in names:
            table.add_column(name, overflow="fold")
        shown = rows if limit <= 0 else rows[:limit]
        for row in shown:
            # Text(...) keeps model output verbatim: no Rich markup is interpreted; control
            # characters are shown, not sent to the terminal.
            table.add_row(*[Text(visible(_fmt_cell(row[n]))) for n in names])
        console.print(table)
        if len(shown) < len(rows):
            console.print(f"({len(rows)} rows, {len(shown)} shown; --limit 0 shows all)")


def _fmt_cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command()
def schema() -> None:
    """Print the documented schema of a run file (tables, columns, views)."""
    from presrm.store.schema import describe_schema

    typer.echo(describe_schema())


app.command()(export)


@app.command("eval")
def eval_(
    run_file: Annotated[Path, typer.Argument(help="Run file (.duckdb).")],
    iteration: Annotated[int | None, typer.Option("--iteration", "-i", help="Only this iteration.")] = None,
    recompute: Annotated[
        bool,
        typer.Option(
            "--recompute", help="Rewrite eval_metrics from the stored rows (old runs, new metrics)."
        ),
    ] = False,
    gap: Annotated[
        bool,
        typer.Option(
            "--gap", help="The verifier-gap table of M<iteration> (default M0): samples and judges anew."
        ),
    ] = False,
    k: Annotated[int, typer.Option(help="--gap: solutions sampled per problem.")] = 8,
    problems: Annotated[int, typer.Option(help="--gap: held-out problems (the run's own).")] = 300,
    modes: Annotated[
        str,
        typer.Option(
            help="--gap: judge modes, comma-separated (likelihood, pointwise, pairwise-text, pairwise-probs,"
            " paraphrase, check, repose-rest, repose-step)."
        ),
    ] = "likelihood,pointwise,pairwise-probs",
    verbose: Annotated[
        bool, typer.Option("--verbose", help="--gap: keep other libraries' progress bars, warnings and logs.")
    ] = False,
) -> None:
    """Evaluation metrics per iteration (accuracy, judge accuracy, calibration), computed from stored rows."""
    from presrm.run.quiet import quiet_third_party

    quiet_third_party(verbose)  # --gap loads a model
    from presrm.eval.evaluate import recompute_metrics, run_iterations, summarize_iteration

    if gap:
        from presrm.eval.gap_run import run_gap
        from presrm.eval.verifier_gap import JUDGE_MODES, format_table

        chosen = [m.strip() for m in modes.split(",") if m.strip()]
        bad = [m for m in chosen if m not in JUDGE_MODES]
        if bad or k < 1 or problems < 1:
            raise PresrmError(
                f"--modes: unknown {', '.join(bad)} (known: {', '.join(JUDGE_MODES)})"
                if bad
                else "--k and --problems must be at least 1"
            )
        gap_table = run_gap(run_file, iteration or 0, problems=problems, k=k, modes=chosen)
        typer.echo("\n".join(format_table(gap_table)))
        return
    iterations = [iteration] if iteration is not None else run_iterations(run_file)
    if recompute:
        summaries = recompute_metrics(run_file, iterations)
    else:
        summaries = {it: summarize_iteration(run_file, it) for it in iterations}
    names = sorted({k for summary in summaries.values() for k in summary})
    table = Table(header_style="bold")
    table.add_column("metric")
    for it in summaries:
        table.add_column(f"M{it}", justify="right")
    for name in names:
        table.add_row(name, *[_fmt_cell(summaries[it].get(name)) for it in summaries])
    console.print(table)


@app.command()
def report(
    run_files: Annotated[list[Path], typer.Argument(help="Run file(s) (.duckdb); several are compared.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for report.md and its PNG plots.")],
) -> None:
    """Write a Markdown report with per-iteration tables and PNG plots; several runs side by side."""
    from presrm.eval.compare import write_comparison
    from presrm.eval.report import write_report

    if len(run_files) == 1:
        typer.echo(str(write_report(run_files[0], out)))
    else:
        typer.echo(str(write_comparison(run_files, out)))


app.command()(solve)


@app.command("config")
def show_config() -> None:
    """List every config key with its type, default and meaning (a config file starts from these
    defaults; `presrm run` without one runs presrm/quickstart.toml)."""
    from presrm.config import describe_fields

    table = Table(header_style="bold")
    for col in ("key", "type", "default", "meaning"):
        table.add_column(col)
    for row in describe_fields():
        table.add_row(*[Text(c) for c in row])
    console.print(table)
    console.print(f"presrm run without a config file runs {QUICKSTART}")


def _rank() -> int:
    """This process's rank under a data-parallel launcher (``torchrun``, ``accelerate launch``); 0 otherwise."""
    try:
        return int(os.environ.get("RANK", "0") or 0)
    except ValueError:
        return 0


def main() -> None:
    """Console-script entry: run the app, turning user errors into one line."""
    rank = _rank()
    try:
        app(standalone_mode=False)
    except Interrupted as err:
        if rank == 0:  # every rank of a data-parallel run stops at the same point
            err_console.print(Text(str(err), style="yellow"), soft_wrap=True)
        sys.exit(130)
    except PresrmError as err:
        where = f"[rank {rank}] " if rank else ""
        err_console.print(Text(f"{where}error: {err}", style="red"), soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except OSError as err:  # disk full, file too large, no permission: the machine, not a bug
        where = f": {err.filename}" if err.filename else ""
        err_console.print(Text(f"error: {err.strerror or err}{where}", style="red"), soft_wrap=True)
        sys.exit(2)
    except Exception as exc:  # usage errors arrive here in non-standalone mode
        import click

        # Typer may bring its own copy of click: its exceptions derive from TyperException.
        usage = (click.exceptions.ClickException, typer.TyperException)
        if isinstance(exc, usage) and callable(getattr(exc, "show", None)):
            exc.show()  # type: ignore[union-attr]
            sys.exit(int(getattr(exc, "exit_code", 2)))
        if isinstance(exc, (click.exceptions.Abort, typer.Abort)):
            sys.exit(1)
        if type(exc).__module__.lstrip("_") == "duckdb":  # a run file damaged past what opening checks
            line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            err_console.print(Text(f"error: cannot read the run file: {line}", style="red"), soft_wrap=True)
            sys.exit(2)
        raise


if __name__ == "__main__":
    main()
