"""The judge's prompt and answer format (shared by the judge, EFT data and evaluation).

Pairwise (the paper's): the question, the accepted steps so far, two candidate next
steps A and B; the judge may write a short check, then answers ``[[A]]`` or ``[[B]]``.
Pointwise (a cheaper baseline): one candidate, answered ``Yes`` or ``No``.

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


def verdict_prefix(raw: str) -> str:
    """The generated text up to and including ``[[`` (appended when the model never wrote it).

    The verdict token's probabilities are read right after this prefix.
    """
    cut = raw.find(VERDICT_OPEN)
    if cut >= 0:
        return raw[: cut + len(VERDICT_OPEN)]
    return raw.rstrip() + (" " if raw.strip() else "") + VERDICT_OPEN
