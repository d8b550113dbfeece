"""Showing stored text on a terminal: verbatim, except that control characters are made visible.

Model output is stored exactly as generated. Printed raw, an ESC sequence in it would recolour or
clear the user's terminal, move the cursor or plant a hyperlink, and Rich silently drops BEL, BS,
VT, FF and CR; so the table views (``presrm sql``, the inspector) show each control character as
a ``\\x1b``-style escape instead. CSV, JSON and Parquet output stay byte-exact.
"""

from __future__ import annotations

# C0 and C1 controls and DEL, except the newline and tab that layouts handle.
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x00, 0x20), *range(0x7F, 0xA0)) if chr(c) not in "\n\t"}


def visible(text: str) -> str:
    """``text`` with every control character but newline and tab written as ``\\xNN``."""
    return text.translate(_ESCAPES)


def interval_suffix(low: float | None, high: float | None) -> str:
    """`` [41.2, 54.9]`` for a stored 95 % interval of a rate (in percent); empty without one."""
    if low is None or high is None:
        return ""
    return f" [{100 * low:.1f}, {100 * high:.1f}]"
