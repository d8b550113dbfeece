"""Screenshots of the inspector for the documentation.

    python -m presrm.tui.screenshots RUN.duckdb docs/screenshots [--tree TREE_ID]

Drives the app headless (no terminal needed), saves one SVG per screen with
``App.save_screenshot`` and converts each to PNG with ``rsvg-convert`` when it is
installed (Debian: ``librsvg2-bin``; ``fonts-firacode`` for the font Textual names),
keeping the PNG only.
Nothing is written to the run file.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from textual.pilot import Pilot
from textual.worker import WorkerState

from presrm.errors import PresrmError
from presrm.store.db import open_run
from presrm.tui.app import InspectorApp

SIZE = (150, 45)


async def _settle(pilot: Pilot) -> None:
    app = pilot.app
    for _ in range(200):
        await pilot.pause(0.02)
        if not any(w.state in (WorkerState.PENDING, WorkerState.RUNNING) for w in app.workers):
            await pilot.pause()
            return


def to_png(svg: Path) -> Path | None:
    """Convert with rsvg-convert (None when it is not installed)."""
    exe = shutil.which("rsvg-convert")
    if exe is None:
        return None
    # Textual writes spaces as &#160; inside <text>; librsvg drops leading ones unless
    # whitespace is preserved, which shifts words. Preserve it for the conversion.
    text = svg.read_text(encoding="utf-8").replace("<svg ", '<svg xml:space="preserve" ', 1)
    png = svg.with_suffix(".png")
    with tempfile.NamedTemporaryFile("w", suffix=".svg", delete=False, encoding="utf-8") as tmp:
        tmp.write(text)
    try:
        subprocess.run([exe, tmp.name, "-o", str(png)], check=True)
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    return png


async def capture(run_file: Path, out: Path, tree_id: int | None) -> list[Path]:
    """Overview, problems, a tree (the given one, or the top of the problems table), calibration, help."""
    out.mkdir(parents=True, exist_ok=True)
    app = InspectorApp(run_file, refresh_interval=None)
    shots: list[Path] = []

    def shot(name: str) -> None:
        shots.append(Path(app.save_screenshot(f"{name}.svg", path=str(out))))

    async with app.run_test(size=SIZE) as pilot:
        await _settle(pilot)
        await pilot.pause(0.5)  # the index follows the first screen
        await _settle(pilot)
        shot("overview")
        await pilot.press("2")
        await _settle(pilot)
        app.apply_preset("confident_wrong")
        await _settle(pilot)
        shot("problems")
        if tree_id is not None:
            app.open_tree(tree_id)
        else:
            await pilot.press("enter")  # the highlighted row of the problems table
        await _settle(pilot)
        await pilot.press("down", "down")
        await _settle(pilot)
        shot("tree")
        await pilot.press("escape")
        await _settle(pilot)
        await pilot.press("3")
        await _settle(pilot)
        shot("calibration")
        await pilot.press("question_mark")
        await _settle(pilot)
        shot("help")
    return shots


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m presrm.tui.screenshots", description=__doc__.splitlines()[0]
    )
    parser.add_argument("run_file", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--tree", type=int, default=None, help="tree to show (default: first wrong-but-confident)"
    )
    args = parser.parse_args(argv)
    try:
        with open_run(args.run_file):
            pass
    except PresrmError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for svg in asyncio.run(capture(args.run_file, args.out_dir, args.tree)):
        png = to_png(svg)
        if png is not None:
            svg.unlink()  # keep the PNG only
        print(png or svg)
    return 0


if __name__ == "__main__":
    sys.exit(main())
