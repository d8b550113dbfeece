"""`presrm report A B` lists the problems the two runs' last models disagree on."""

from __future__ import annotations

from pathlib import Path

from test_compare import _run

from presrm.eval.compare import write_comparison


def test_comparison_lists_the_flipped_problems(tmp_path: Path) -> None:
    a = _run(tmp_path / "base.duckdb", 0, [True, False, True, False], [True, True, False, False])
    b = _run(tmp_path / "new.duckdb", 1, [True, True, True, True], [True, False, True, False])
    text = write_comparison([a, b], tmp_path / "out").read_text(encoding="utf-8")
    section = text[text.index("## Flipped problems") :]
    assert "### base M2 → new M2" in section
    # M2 of base: p0 p1 right; M2 of new: p0 p2 right
    assert (
        "4 problems: 1 wrong → right, 1 right → wrong, 1 both right, 1 both wrong; accuracy B − A +0.0 points"
        in section
    )
    assert "- wrong → right: p2:" in section and "- right → wrong: p1:" in section
    assert "p0" not in section.split("both wrong")[1] and "p3" not in section.split("both wrong")[1]
