"""A one-line footer of the screen's key bindings, drawn as one Text.

Textual's ``Footer`` mounts one widget per binding and re-mounts them all whenever
the active bindings change (each screen switch and focus change); on a slow machine
that alone costs about 0.1 s of every tree opened. ``KeyBar`` shows the same
bindings (key, description, the command palette on the right) as one
:class:`rich.text.Text`, updates by re-rendering it, and runs a binding when it is
clicked.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widgets import Static


class KeyBar(Static):
    """Docked at the bottom; click a key to press it."""

    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        background: $footer-background;
        color: $footer-foreground;
    }
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__("", **kwargs)  # type: ignore[arg-type]
        self._spans: list[tuple[int, int, str]] = []

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)
        self._bindings_changed(self.screen)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, screen: Screen[object]) -> None:
        if self.is_attached and screen is self.screen:
            self.update(self.bar_text())

    def bar_text(self) -> Text:
        """The bindings as text; remembers where each key is, for clicks."""
        key_style = f"bold {self.app.theme_variables.get('footer-key-foreground', 'yellow')}"
        text = Text(no_wrap=True, overflow="ellipsis")
        spans: list[tuple[int, int, str]] = []
        seen: set[str] = set()
        palette = self.app.COMMAND_PALETTE_BINDING if self.app.ENABLE_COMMAND_PALETTE else None
        for key, active in self.screen.active_bindings.items():
            binding = active.binding
            if not binding.show or binding.action in seen or key == palette:
                continue
            seen.add(binding.action)
            start = len(text)
            text.append(f" {self.app.get_key_display(binding)}", style=key_style if active.enabled else "dim")
            text.append(f" {binding.description} ", style="" if active.enabled else "dim")
            spans.append((start, len(text), key))
        if palette is not None and palette in self.screen.active_bindings:
            binding = self.screen.active_bindings[palette].binding
            label = Text.assemble((self.app.get_key_display(binding), key_style), " palette ")
            pad = max(1, self.size.width - len(text) - len(label))
            text.append(" " * pad)
            spans.append((len(text), len(text) + len(label), palette))
            text.append_text(label)
        self._spans = spans
        return text

    def on_resize(self, _: events.Resize) -> None:
        self.update(self.bar_text())

    def on_click(self, event: events.Click) -> None:
        for start, end, key in self._spans:
            if start <= event.x < end:
                self.app.simulate_key(key)
                return
