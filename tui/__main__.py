"""``python -m presrm.tui RUN.duckdb``: run the inspector (``presrm inspect --web`` serves this)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from presrm.errors import PresrmError
from presrm.store.db import open_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m presrm.tui", description="Browse a presrm run file.")
    parser.add_argument("run_file", type=Path, help="the run's .duckdb file")
    parser.add_argument("--no-refresh", action="store_true", help="do not poll the file for new rows")
    parser.add_argument("--compare", type=Path, help="a second run file: side B of the compare tab")
    args = parser.parse_args(argv)
    try:
        for path in (args.run_file, args.compare):
            if path is not None:
                with open_run(path):
                    pass
    except PresrmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from presrm.tui.app import InspectorApp

    refresh = None if args.no_refresh else 2.0
    InspectorApp(args.run_file, refresh_interval=refresh, compare_file=args.compare).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
