"""The ? help screen: what each view shows and its keys."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Everywhere",
        [
            ("1 / 2 / 3 / 4", "overview / problems / calibration / compare"),
            ("ctrl+p", "command palette (views, filter presets, reload, export flags)"),
            ("r", "reload the run now (it also refreshes itself every 2 s while a run writes)"),
            ("?", "this help"),
            ("q", "quit"),
        ],
    ),
    (
        "Problems",
        [
            ("enter / click", "open the tree of the highlighted row"),
            ("/", "search problem id, question, final answer or any step text"),
            (
                "p",
                "next filter preset: wrong but confident, judge vs checker, inconsistent, flagged, unfinished",
            ),
            ("s / d / click header", "sort column / reverse"),
            ("[ / ]", "previous / next page"),
        ],
    ),
    (
        "Tree",
        [
            ("↑ ↓ ← → / click", "move between steps (space/enter: expand or collapse)"),
            ("tab", "switch between the tree and the judge calls table"),
            ("f", "flag the step (tree focused) or the judge call (table focused) as a judge error"),
            ("u", "remove the flags on the step or judge call"),
            ("c", "show the chosen path only"),
            ("e", "expand everything"),
            ("escape", "back"),
        ],
    ),
    (
        "Calibration",
        [
            ("enter / click", "open the tree of a listed solution"),
        ],
    ),
    (
        "Compare",
        [
            ("model A / B", "two iterations (or, with --compare, two runs) on the same problems"),
            ("enter / click", "open the problem's two trees side by side (tab: switch tree, escape: back)"),
        ],
    ),
]

LEGEND = (
    "Tree: ● chosen step  ▽ rejected (worst-scored) step  ↺ rolled back  · other candidate;"
    " the number is the step's self-score (win rate among siblings, or P(Yes));"
    " check ✓/✗ = the task's step checker; ⇒ final answer ✓/✗; ⚑ flags."
)


class HelpScreen(ModalScreen[None]):
    """Keys and legend."""

    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("question_mark", "dismiss", "Close", show=False),
        Binding("q", "dismiss", "Close", show=False),
    ]

    def compose(self) -> ComposeResult:
        table = Table(show_header=False, box=None, padding=(0, 2), expand=True)
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for section, keys in KEYS:
            table.add_row(Text(section, style="bold underline"), "")
            for key, what in keys:
                table.add_row(Text(key), Text(what))
            table.add_row("", "")
        with VerticalScroll(id="help-box"):
            yield Static(Text("presrm inspect — help", style="bold"))
            yield Static(table, id="help-keys")
            yield Static(Text(LEGEND, style="dim"))
            yield Static(Text("escape closes", style="dim"))

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
