"""Formatting of scores and model text for the inspector.

Everything returns :class:`rich.text.Text` built from plain strings: model-written
text is never parsed as markup (``[bold]`` or ``\\frac{a}[b]`` in a step shows
verbatim) and never used as a format string.
"""

from __future__ import annotations

from rich.text import Text

from presrm.display import visible
from presrm.inspect.trees import JudgmentRow, NodeRow

DASH = "–"


def score(value: float | None, digits: int = 2) -> str:
    """A self-score or probability with a fixed number of decimals, or a dash."""
    return DASH if value is None else f"{value:.{digits}f}"


def pct(value: float | None) -> str:
    """A share as a percentage with one decimal, or a dash."""
    return DASH if value is None else f"{100 * value:.1f}%"


def points(value: float | None) -> str:
    """A difference of shares in signed percentage points, or a dash."""
    return DASH if value is None else f"{100 * value:+.1f}"


def count(value: int | None) -> str:
    """An integer with thousands separators ("0" stays "0")."""
    return DASH if value is None else f"{value:,}"


def score_style(value: float | None) -> str:
    """Colour of a score: red below 0.34, yellow below 0.67, green above."""
    if value is None:
        return "dim"
    return "red" if value < 0.34 else "yellow" if value < 0.67 else "green"


def correct_mark(correct: bool | None) -> Text:
    """✓ (green), ✗ (red) or a dim dash for unknown."""
    if correct is None:
        return Text(DASH, style="dim")
    return Text("✓", style="bold green") if correct else Text("✗", style="bold red")


def one_line(text: str | None, width: int = 90) -> str:
    """Model text on one line (newlines shown as ⏎, control characters as \\xNN), cut to ``width``."""
    flat = visible((text or "").replace("\r\n", "\n").replace("\n", " ⏎ "))
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def plain(value: object, style: str = "") -> Text:
    """Any value as literal text (no markup; control characters shown as \\xNN)."""
    return Text("" if value is None else visible(str(value)), style=style)


def node_label(node: NodeRow, n_flags: int = 0, width: int = 80) -> Text:
    """A tree label: status glyph, self-score, step text, checker verdict, final answer, flags."""
    if node.rolled_back:
        glyph, style = "↺ ", "yellow"
    elif node.chosen:
        glyph, style = "● ", "bold"
    elif node.rejected:
        glyph, style = "▽ ", "dim"
    else:
        glyph, style = "· ", ""
    label = Text()
    label.append(glyph, style="bold green" if node.chosen and not node.rolled_back else style)
    label.append(f"{score(node.self_score)} ", style=score_style(node.self_score))
    label.append(one_line(node.text, width), style=style)
    if node.step_check is not None:
        label.append("  check ", style="dim")
        label.append("✓" if node.step_check else "✗", style="green" if node.step_check else "red")
    if node.is_final:
        label.append("  ⇒ ", style="dim")
        label.append(one_line(node.final_answer or "?", 24), style="bold")
        label.append(" ")
        label.append_text(correct_mark(node.correct))
    if n_flags:
        label.append(f"  ⚑{n_flags}", style="bold magenta")
    if node.expansion is not None:
        label.append(f"  r{node.expansion}", style="dim")
    return label


def node_detail(node: NodeRow) -> Text:
    """The facts of one step, then its full text verbatim."""
    out = Text()
    status = (
        "rolled back"
        if node.rolled_back
        else "chosen"
        if node.chosen
        else "rejected"
        if node.rejected
        else "candidate"
    )
    out.append(f"node {node.node_id}", style="bold")
    out.append(f"  depth {node.depth}  expansion {node.expansion if node.expansion is not None else DASH}  ")
    out.append(
        status, style="bold green" if status == "chosen" else "yellow" if status == "rolled back" else ""
    )
    out.append("\nself-score ")
    out.append(score(node.self_score, 3), style=score_style(node.self_score))
    out.append(f" ({node.score_kind or DASH})   soft ")
    out.append(score(node.soft_score, 3), style=score_style(node.soft_score))
    out.append("   step check ")
    out.append_text(correct_mark(node.step_check))
    out.append(
        f"   tokens {count(node.n_tokens)}   logprob {score(node.logprob, 2)}   finish {node.finish or DASH}"
    )
    out.append(f"   parse {node.parse_status or DASH}")
    if node.is_final:
        out.append("\nfinal answer ")
        out.append(visible(node.final_answer or DASH), style="bold")
        out.append(" ")
        out.append_text(correct_mark(node.correct))
    out.append("\n\n")
    out.append(visible(node.text))
    return out


def judgment_detail(j: JudgmentRow, node_id: int | None) -> Text:
    """One judge call: who was A and B, the parsed verdict, probabilities, check and raw output."""
    out = Text()
    out.append(f"judgment {j.judgment_id}", style="bold")
    mode = "likelihood comparison (no LLM judge)" if j.mode == "likelihood" else j.mode
    out.append(f"  {mode}  order {j.order}  A = node {j.node_a}")
    if j.node_b is not None:
        out.append(f"  B = node {j.node_b}")
    out.append("\nverdict ")
    out.append(j.verdict or "unparseable", style="bold" if j.verdict else "bold red")
    if j.expected is not None:
        out.append("  expected ")
        out.append(j.expected, style="green" if j.verdict == j.expected else "red")
    if j.verdict_source is not None:
        out.append(f"  from {j.verdict_source}")
    out.append(f"  p_a {score(j.p_a, 3)}  p_b {score(j.p_b, 3)}")
    if j.probs_at is not None:
        out.append(f" (read at {'the written verdict' if j.probs_at == 'verdict' else 'an appended [['})")
    if node_id is not None and j.winner is not None and j.node_b is not None:
        out.append("  this node ")
        out.append("won" if j.winner == node_id else "lost", style="green" if j.winner == node_id else "red")
    out.append("\ncheck: ", style="dim")
    out.append(visible(j.check_text) if j.check_text is not None else DASH)
    out.append("\nraw output: ", style="dim")
    out.append(visible(j.raw_output) if j.raw_output is not None else DASH)
    return out
