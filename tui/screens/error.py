"""A full-screen message for a run that cannot be opened (missing, not presrm, wrong version)."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Vertical
from textual.screen import Screen
from textual.widgets import Static

from presrm.tui.widgets.keybar import KeyBar


class ErrorScreen(Screen[None]):
    """Shows one error message; q quits."""

    BINDINGS = [Binding("q", "app.quit", "Quit"), Binding("escape", "app.quit", "Quit", show=False)]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        with Center(), Vertical(id="error-box"):
            yield Static(Text("Cannot open this run", style="bold red"), id="error-title")
            yield Static(Text(self.message), id="error-message")
            yield Static(Text("press q to quit", style="dim"))
        yield KeyBar()
