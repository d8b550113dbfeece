"""Final-answer checking: does a predicted answer equal the gold one?

Plain numbers (ints, decimals, fractions "3/4", thousands commas) compare as exact
rationals without touching sympy; everything else goes to ``math_verify`` (LaTeX,
expressions), with a normalized exact match first and as the fallback.
"""

from __future__ import annotations

import logging
import re
from fractions import Fraction

from math_verify import parse, verify

# math_verify times out via signal.alarm, which only works in the main thread; we run
# checks in worker threads, so timeouts are off and long inputs skip sympy instead.
_MAX_SYMBOLIC_CHARS = 200


class _DropTimeoutWarning(logging.Filter):
    """math_verify warns once that timeouts are off; that is our deliberate choice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Timeout is disabled")


for _name in ("math_verify.parser", "math_verify.grader"):
    logging.getLogger(_name).addFilter(_DropTimeoutWarning())

_NUMBER_RE = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_FRACTION_RE = re.compile(r"([-+]?\d+)\s*/\s*([-+]?\d+)")
_LATEX_FRAC_RE = re.compile(r"(-?)\\[dt]?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}")
_THOUSANDS_RE = re.compile(r"(?<![\d.])\d{1,3}(?:,\d{3})+(?![\d])")
_BOXED_RE = re.compile(r"^\\boxed\s*\{(.*)\}$", re.DOTALL)
_WORDS_RE = re.compile(r"[^\W\d_]{2,}(?:[ '-][^\W\d_]+)*")  # "Paris", "New York", "don't"
_MATHY_RE = re.compile(r"[\d\\]")


def _is_words(text: str) -> bool:
    return _WORDS_RE.fullmatch(text) is not None


def _normalize(text: str) -> str:
    """Strip wrappers that never change an answer's value ($, \\(, \\boxed, a final period)."""
    s = text.strip()
    for _ in range(3):  # wrappers can nest: "$\\boxed{5}$."
        s = s.rstrip(".").strip()
        if s.startswith("$") and s.endswith("$") and len(s) >= 2:
            s = s.strip("$").strip()
        if s.startswith("\\(") and s.endswith("\\)"):
            s = s[2:-2].strip()
        boxed = _BOXED_RE.match(s)
        if boxed:
            s = boxed.group(1).strip()
    s = s.replace("\\!", "").replace("\\,", "")
    s = _THOUSANDS_RE.sub(lambda m: m.group(0).replace(",", ""), s)
    return " ".join(s.split())


def as_number(text: str) -> Fraction | None:
    """The exact value of a plain number ("14", "-2.5", "3/4", "\\frac{3}{4}"), else None."""
    if len(text) > 4000:  # Python refuses longer int conversions; such text is junk anyway
        return None
    if _NUMBER_RE.fullmatch(text):
        return Fraction(text)
    for pattern in (_FRACTION_RE, _LATEX_FRAC_RE):
        match = pattern.fullmatch(text)
        if match:
            groups = match.groups()
            sign = -1 if len(groups) == 3 and groups[0] == "-" else 1
            num, den = int(groups[-2]), int(groups[-1])
            return None if den == 0 else sign * Fraction(num, den)
    return None


def _symbolic_match(predicted: str, gold: str) -> bool | None:
    """math_verify's verdict, or None when either side does not parse."""
    if len(predicted) > _MAX_SYMBOLIC_CHARS or len(gold) > _MAX_SYMBOLIC_CHARS:
        return None
    try:
        gold_parsed = parse(f"${gold}$", parsing_timeout=None)
        pred_parsed = parse(f"${predicted}$", parsing_timeout=None)
        if not gold_parsed or not pred_parsed:
            return None
        return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))
    except Exception:  # math_verify/sympy can fail on arbitrary model text: treat as unparsed
        return None


def answers_match(predicted: str | None, gold: str) -> bool | None:
    """Whether ``predicted`` equals ``gold``; None when there is no prediction."""
    if predicted is None:
        return None
    pred, ref = _normalize(predicted), _normalize(gold)
    pred_num, ref_num = as_number(pred), as_number(ref)
    if pred_num is not None and ref_num is not None:
        return pred_num == ref_num
    if pred.replace(" ", "").casefold() == ref.replace(" ", "").casefold():
        return True
    if not pred or not ref or _is_words(pred) or _is_words(ref):
        return False  # words only match exactly (sympy would read "no" as n*o, slowly)
    if (pred_num is None) != (ref_num is None) and not _MATHY_RE.search(pred if pred_num is None else ref):
        return False  # a number never equals digit-free, LaTeX-free text
    verdict = _symbolic_match(pred, ref)
    return bool(verdict)
