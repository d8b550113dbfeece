"""The flag dialog: an optional note (and, for a pairwise judgment, the corrected verdict)."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static


@dataclass(frozen=True)
class FlagRequest:
    """What the person entered."""

    target: str
    target_id: int
    note: str
    corrected_verdict: str | None


class FlagDialog(ModalScreen[FlagRequest | None]):
    """Asks for a note; enter flags, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, target: str, target_id: int, description: Text, default_verdict: str | None) -> None:
        super().__init__()
        self.target = target
        self.target_id = target_id
        self.description = description
        self.default_verdict = default_verdict

    def compose(self) -> ComposeResult:
        with Vertical(id="flag-dialog"):
            yield Label(f"Flag {self.target} {self.target_id} as a judge error", id="flag-title")
            yield Static(self.description, id="flag-description")
            yield Input(placeholder="note (optional): why is this wrong?", id="flag-note")
            if self.target == "judgment" and self.default_verdict is not None:
                yield Label("corrected verdict")
                yield Select(
                    [("A", "A"), ("B", "B")],
                    value=self.default_verdict,
                    allow_blank=True,
                    prompt="no correction",
                    id="flag-verdict",
                )
            with Horizontal(id="flag-buttons"):
                yield Button("Flag", variant="warning", id="flag-ok")
                yield Button("Cancel", id="flag-cancel")

    def on_mount(self) -> None:
        self.query_one("#flag-note", Input).focus()

    def _request(self) -> FlagRequest:
        verdict: str | None = None
        selects = self.query("#flag-verdict")
        if selects:
            value = self.query_one("#flag-verdict", Select).value
            verdict = None if value is Select.NULL else str(value)
        note = self.query_one("#flag-note", Input).value.strip()
        return FlagRequest(self.target, self.target_id, note, verdict)

    @on(Input.Submitted, "#flag-note")
    @on(Button.Pressed, "#flag-ok")
    def _ok(self) -> None:
        self.dismiss(self._request())

    @on(Button.Pressed, "#flag-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
