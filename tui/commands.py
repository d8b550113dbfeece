"""Command palette entries: views, filter presets, reload, flag export."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from presrm.inspect.problems import PRESETS

if TYPE_CHECKING:
    from presrm.tui.app import InspectorApp


class InspectorCommands(Provider):
    """Commands of the inspector."""

    def _commands(self) -> list[tuple[str, Callable[[], object], str]]:
        app: InspectorApp = self.app
        commands: list[tuple[str, Callable[[], object], str]] = [
            ("Show overview", partial(app.show_tab, "overview"), "runs and iterations"),
            ("Show problems", partial(app.show_tab, "problems"), "one row per search tree"),
            ("Show calibration", partial(app.show_tab, "calibration"), "self-score vs correctness"),
            ("Reload run", app.action_reload, "re-read everything from the run file"),
            ("Export flags as EFT JSONL", app.action_export_flags, "next to the run file"),
            ("Help", app.action_help, "keys and legend"),
        ]
        for key, desc in PRESETS.items():
            commands.append((f"Filter problems: {desc}", partial(app.apply_preset, key), f"preset {key}"))
        return commands

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, help=help_text)
