"""Run presrm from a checkout without installing: ``python cli.py run …``.

The Typer app itself lives in presrm/cli.py (the installed console script's target),
so nothing installs a generic top-level ``cli`` module.
"""

from presrm.cli import main

if __name__ == "__main__":
    main()
