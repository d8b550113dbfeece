"""The judge's prompt and answer format (shared by the judge, EFT data and evaluation).

Pairwise (the paper's): the question, the accepted steps so far, two candidate next
steps A and B; the judge may write a short check, then answers ``[[A]]`` or ``[[B]]``.
Pointwise (a cheaper baseline): one candidate, answered ``Yes`` or ``No``.

The judge may write a check over several lines; its text ends after the first complete
verdict (:func:`verdict_end`), and the verdict is read wherever it stands.

The prompts are compact on purpose: the embedded default model reads one character
per token. Model text is inserted with plain concatenation (never ``str.format``),
so braces or markup in a step cannot change the template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

VERDICT_OPEN = "[["
VERDICT_TOKENS = ("A", "B")
POINTWISE_TOKENS = ("Yes", "No")
CHECK_PREFIX = "Check: "

PAIRWISE_INSTRUCTION = (
    "Which next step is better (correct and helpful)? Ignore position and length. "
    "Check the steps, then answer [[A]] or [[B]]."
)
POINTWISE_INSTRUCTION = "Is this next step correct? Answer Yes or No."

_VERDICT_RE = re.compile(r"\[\[\s*([AB])\s*\]\]")


def _context(question: str, previous_steps: list[str]) -> str:
    lines = ["Question: " + question]
    lines.extend(previous_steps)
    return "\n".join(lines)


def pairwise_user_text(question: str, previous_steps: list[str], step_a: str, step_b: str) -> str:
    """The user message of a pairwise judgment (wrap it with Policy.complete_prompt)."""
    return (
        "Judge.\n"
        + _context(question, previous_steps)
        + "\nA: "
        + step_a
        + "\nB: "
        + step_b
        + "\n"
        + PAIRWISE_INSTRUCTION
    )


def pointwise_user_text(question: str, previous_steps: list[str], step: str) -> str:
    """The user message of a pointwise judgment."""
    return "Judge.\n" + _context(question, previous_steps) + "\nNext: " + step + "\n" + POINTWISE_INSTRUCTION


def pairwise_target(verdict: str, check: str | None) -> str:
    """The answer a judge is trained to write: optional check, then ``[[A]]``/``[[B]]``."""
    if verdict not in VERDICT_TOKENS:
        raise ValueError(f"verdict must be A or B, got {verdict!r}")
    head = f"{CHECK_PREFIX}{check.strip()} " if check else ""
    return head + VERDICT_OPEN + verdict + "]]"


@dataclass(frozen=True)
class ParsedVerdict:
    """What a judge's generated text says."""

    verdict: str | None  # "A" | "B" | None when unparseable or contradictory
    check_text: str | None  # text written before the verdict (the judge's check)


def parse_pairwise(raw: str) -> ParsedVerdict:
    """Read ``[[A]]``/``[[B]]`` from generated text; several different verdicts = no verdict."""
    found = _VERDICT_RE.findall(raw)
    head = raw.split(VERDICT_OPEN, 1)[0].strip()
    if head.startswith(CHECK_PREFIX.strip()):
        head = head[len(CHECK_PREFIX.strip()) :].strip()
    check = head or None
    if not found or len(set(found)) > 1:
        return ParsedVerdict(None, check)
    return ParsedVerdict(found[0], check)


def verdict_end(raw: str) -> int | None:
    """Length of the judge's text up to and including its first complete verdict, or None."""
    found = _VERDICT_RE.search(raw)
    return None if found is None else found.end()


PROBS_AT_VERDICT = "verdict"  # read where the judge wrote its verdict
PROBS_AT_APPENDED = "appended"  # the judge wrote none: "[[" appended to its text


def verdict_position(raw: str) -> tuple[str, str]:
    """(prefix, where): the generated text up to the verdict letter, and whether that is the
    judge's own verdict (``verdict``) or ``[[`` appended because it wrote none (``appended``).

    The verdict token's probabilities are read right after this prefix: at the last verdict
    the judge wrote (all its verdicts agree when it has one), or at an unfinished ``[[`` at
    the end of its text (the token limit came first).
    """
    found = list(_VERDICT_RE.finditer(raw))
    if found:
        return raw[: found[-1].start(1)], PROBS_AT_VERDICT
    if raw.rstrip().endswith(VERDICT_OPEN):
        return raw.rstrip(), PROBS_AT_VERDICT
    return raw.rstrip() + (" " if raw.strip() else "") + VERDICT_OPEN, PROBS_AT_APPENDED


def verdict_prefix(raw: str) -> str:
    """The generated text up to the verdict letter (see :func:`verdict_position`)."""
    return verdict_position(raw)[0]
