"""Gold answers and reference steps from a dataset's answer text, by its form.

``gsm8k``: worked solution lines, then ``#### N`` (calculator annotations ``<<48/2=24>>``
removed); ``boxed``: a MATH-style solution whose last ``\\boxed{...}`` is the answer (its
lines are the steps); ``plain``: the answer itself, no steps. Each returns the gold answer
and the reference step contents *before* the final "The answer is X." step, or raises
ValueError with what is wrong (the caller adds the file and row).
"""

from __future__ import annotations

import re

from presrm.steps import STEP_END

ANSWER_FORMS = ("gsm8k", "boxed", "plain")

_ANNOTATION_RE = re.compile(r"<<[^<>]*>>")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


def clean_number(text: str) -> str:
    """GSM8K gold answers: "1,234" -> "1234", "$5" -> "5", "7." -> "7"."""
    cleaned = text.strip().lstrip("$").rstrip(".").strip()
    return cleaned.replace(",", "") if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", cleaned) else cleaned


def _lines(text: str) -> list[str]:
    steps = []
    for line in text.split(STEP_END):
        line = " ".join(_ANNOTATION_RE.sub("", line).split())
        if line:
            steps.append(line)
    return steps


def gsm8k_steps(answer: str) -> list[str]:
    """The worked lines of a GSM8K answer (everything before ``####``)."""
    return _lines(answer.rsplit("####", 1)[0])


def _last_boxed(text: str) -> tuple[int, int] | None:
    """(start, end) of the last complete ``\\boxed{...}`` (braces balanced), content span."""
    found = None
    for match in _BOXED_RE.finditer(text):
        depth, i = 1, match.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            found = (match.end(), i - 1)
    return found


def parse_answer(text: str, form: str) -> tuple[str, list[str]]:
    """(gold answer, reference step contents) of one answer text in ``form``."""
    if form == "gsm8k":
        if "####" not in text:
            raise ValueError("has no '#### <final answer>' line")
        gold = clean_number(text.rsplit("####", 1)[1])
        if not gold:
            raise ValueError("has nothing after '####'")
        return gold, gsm8k_steps(text)
    if form == "boxed":
        span = _last_boxed(text)
        if span is None:
            raise ValueError("has no complete \\boxed{...} answer")
        gold = " ".join(text[span[0] : span[1]].split())
        if not gold:
            raise ValueError("has an empty \\boxed{}")
        return gold, _lines(text)
    if form == "plain":
        gold = " ".join(text.split())
        if not gold:
            raise ValueError("is empty")
        return gold, []
    raise ValueError(f"answer form must be one of {', '.join(ANSWER_FORMS)}, got {form!r}")
