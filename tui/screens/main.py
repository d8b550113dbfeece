"""The main screen: tabs for the overview, the problems table and the calibration view."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.lazy import Lazy
from textual.screen import Screen
from textual.widgets import Header, TabbedContent, TabPane

from presrm.tui.widgets.calibration import CalibrationPane
from presrm.tui.widgets.compare import ComparePane
from presrm.tui.widgets.keybar import KeyBar
from presrm.tui.widgets.overview import OverviewPane
from presrm.tui.widgets.problems import ProblemsPane

TABS = ("overview", "problems", "calibration", "compare")


class MainScreen(Screen[None]):
    """Overview · Problems · Calibration · Compare."""

    BINDINGS = [
        Binding("1", "show_tab('overview')", "Overview"),
        Binding("2", "show_tab('problems')", "Problems"),
        Binding("3", "show_tab('calibration')", "Calibration"),
        Binding("4", "show_tab('compare')", "Compare", show=False),  # the footer is full; the tab shows it
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="overview", id="tabs"):
            with TabPane("Overview", id="overview"):
                yield OverviewPane(id="overview-pane")
            # The hidden tabs mount after the first screen is drawn (their selects, tables and
            # plot cost about as much to mount and style as the overview itself).
            with TabPane("Problems", id="problems"):
                yield Lazy(ProblemsPane(id="problems-pane"))
            with TabPane("Calibration", id="calibration"):
                yield Lazy(CalibrationPane(id="calibration-pane"))
            with TabPane("Compare", id="compare"):
                yield Lazy(ComparePane(id="compare-pane"))
        yield KeyBar()

    def action_show_tab(self, tab: str) -> None:
        """Switch to a tab and focus its main table."""
        self.query_one(TabbedContent).active = tab
        target = {
            "overview": "#iterations",
            "problems": "#problems-table",
            "calibration": "#confident-wrong",
            "compare": "#compare-table",
        }[tab]
        self.call_after_refresh(lambda: self.query_one(target).focus())
