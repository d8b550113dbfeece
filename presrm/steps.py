"""The step format: the one place that decides what a solution step looks like.

A solution is a sequence of steps, one per line::

    Step 1: 12 + 7 = 19
    Step 2: 19 - 5 = 14
    Step 3: The answer is 14.

The search appends :func:`step_header` to the prefix and lets the model write
the rest of the line; generation of a step stops at :data:`STEP_END`.  Every
function here takes model-written text as plain data: nothing is evaluated,
formatted or interpreted as markup, and no function raises on any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STEP_END = "\n"
"""A step is one line: generation of a step stops at a newline."""

INSTRUCTION = (
    "Solve the problem step by step. Write one step per line, starting with "
    "'Step 1:', 'Step 2:' and so on. Each step does one small calculation. "
    "The last step says 'The answer is N.' where N is the final answer."
)
"""Instruction for chat models (also accepted: a final ``\\boxed{N}``)."""

# Step statuses (ParsedStep.status):
STATUS_OK = "ok"  # a normal intermediate step
STATUS_EMPTY = "empty"  # nothing (or only whitespace / a repeated header) was generated
STATUS_RUNAWAY = "runaway"  # hit the token limit before the newline: incomplete, never final
STATUS_FINAL = "final"  # contains an extractable final answer
STATUS_NO_ANSWER = "no_answer"  # mentions an answer (answer / boxed / ####) but none is extractable
STATUSES = (STATUS_OK, STATUS_EMPTY, STATUS_RUNAWAY, STATUS_FINAL, STATUS_NO_ANSWER)


def step_header(k: int) -> str:
    """The header of the k-th step (1-based), e.g. ``"Step 3:"``."""
    return f"Step {k}:"


def solution_user_message(question: str) -> str:
    """The user turn for chat models: the instruction, then the question."""
    return f"{INSTRUCTION}\n\nProblem: {question}"


def plain_solution_prompt(question: str) -> str:
    """Compact raw-LM prompt (character-level models pay per character)."""
    return f"Question: {question}\n"


def render_prefix(prompt: str, steps: list[str]) -> str:
    """The prompt followed by each full step text and its line end."""
    return prompt + "".join(step + STEP_END for step in steps)


# A step header as models write it: "Step 2:", "step 2 .", "Step:", "Step Step 2:",
# optionally wrapped in markdown emphasis ("**Step 2:**").  A number needs a ':' , '.'
# or ')' after it so "Step 12 + 7" is not taken as a header; '.' must not start a decimal.
_HEADER = r"[*#]*\s*(?:step\b\s*)+(?:\d+\s*)?(?:[:)]|\.(?!\d))\s*\**"
_LEADING_HEADERS_RE = re.compile(rf"^\s*(?:{_HEADER}\s*)+", re.IGNORECASE)
# Segment markers: a numbered header anywhere, or a number-less "Step:" at a line start.
# Deliberately without leading repetitions (linear time on junk like "step step step ...");
# a doubled "Step Step 2:" leaves a trailing "Step" on the previous piece, removed below.
_MARKER_RE = re.compile(
    r"\bstep\s*\d+\s*(?:[:)]|\.(?!\d))\s*\**|^[ \t]*[*#]*[ \t]*(?:step[ \t]+)*step\s*:\s*\**",
    re.IGNORECASE | re.MULTILINE,
)

_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Only the anchor is matched, so "The answer is 14. The answer is 15." finds both.
_ANSWER_RE = re.compile(
    r"\banswers?\b\s*(?:is|was|would\s+be|will\s+be|=|:)\s*:?[ \t]*|####[ \t]*", re.IGNORECASE
)
_MENTIONS_ANSWER_RE = re.compile(r"\banswers?\b|\\boxed|####", re.IGNORECASE)
# A number: thousands groups (1,234) or plain digits, optional decimals, optional /denominator.
_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?!\.\d))?"
_LEADING_NUMBER_RE = re.compile(rf"^\$?\s*({_NUMBER})(?![\d,.]\d)")
_OPERATOR_AFTER_RE = re.compile(r"^\s*[-+*/×x^÷]\s*[\d(]")
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)")


@dataclass(frozen=True)
class ParsedStep:
    """One generated step after normalization.

    ``text`` is the normalized full step ``"Step k: content"`` (whitespace
    collapsed, repeated headers removed); ``status`` is one of :data:`STATUSES`:
    ``empty`` nothing generated; ``runaway`` the token limit was hit without a
    newline (content kept, never final); ``final`` a final answer was found;
    ``no_answer`` it mentions an answer but none is extractable; ``ok`` otherwise.
    """

    text: str
    content: str
    is_final: bool
    final_answer: str | None
    status: str


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _strip_headers(content: str) -> str:
    """Drop headers the model repeated after ours ("Step 2: Step 2: 5 + 3")."""
    return _LEADING_HEADERS_RE.sub("", content, count=1)


def parse_step(raw_generated: str, k: int, *, truncated: bool = False) -> ParsedStep:
    """Normalize what the model wrote after ``step_header(k)``.

    Only the first line counts (text after a newline belongs to no step).
    ``truncated`` says generation hit its token limit instead of a newline.
    """
    first_line, newline, _rest = raw_generated.partition("\n")
    content = _collapse(_strip_headers(first_line))
    header = step_header(k)
    text = f"{header} {content}" if content else header
    if not content:
        return ParsedStep(text, content, False, None, STATUS_EMPTY)
    if truncated and not newline:
        return ParsedStep(text, content, False, None, STATUS_RUNAWAY)
    answer = extract_final_answer(content)
    if answer is not None:
        return ParsedStep(text, content, True, answer, STATUS_FINAL)
    if _MENTIONS_ANSWER_RE.search(content):
        return ParsedStep(text, content, False, None, STATUS_NO_ANSWER)
    return ParsedStep(text, content, False, None, STATUS_OK)


def _boxed_contents(text: str) -> list[str]:
    """Contents of every complete ``\\boxed{...}`` (balanced braces), by opening position.

    One pass over the text (a stack of open boxes), so junk like ``\\boxed{`` repeated
    thousands of times stays linear.
    """
    opens = {m.end() - 1: m.end() for m in _BOXED_RE.finditer(text)}  # "{" index -> content start
    found: list[tuple[int, str]] = []
    stack: list[tuple[int, int]] = []  # (brace depth of the box, content start)
    depth = 0
    for i, char in enumerate(text):
        if char == "{":
            depth += 1
            if i in opens:
                stack.append((depth, opens[i]))
        elif char == "}" and depth > 0:
            if stack and stack[-1][0] == depth:
                start = stack.pop()[1]
                found.append((start, text[start:i]))
            depth -= 1
    return [content for _, content in sorted(found)]


def _clean_answer(raw: str) -> str | None:
    """Reduce the text after "The answer is" to the answer itself."""
    text = raw.strip()
    boxed = _boxed_contents(text)
    if boxed:
        text = boxed[-1].strip()
    # "The answer is 12 + 7 = 19." -> the right-hand side.
    if "=" in text:
        text = text.rsplit("=", 1)[1].strip()
    text = text.strip("$ \t").removeprefix("\\(").removesuffix("\\)").strip("$ \t")
    number = _LEADING_NUMBER_RE.match(text)
    if number and not _OPERATOR_AFTER_RE.match(text[number.end() :]):
        return _normalize_number(number.group(1))
    end = _SENTENCE_END_RE.search(text)
    if end:
        text = text[: end.start()]
    text = text.rstrip(" .,;!").strip("$ \t").removesuffix("\\)").rstrip()
    return text or None


def _normalize_number(text: str) -> str:
    return re.sub(r"\s+", "", text).replace(",", "")


def extract_final_answer(text: str) -> str | None:
    """The final answer stated in ``text``, or None.

    The last complete ``\\boxed{...}`` wins; otherwise the last "The answer is X",
    "answer: X" or "#### X".  Numbers lose a leading ``$`` and thousands commas
    ("$1,234" -> "1234"); a trailing period is dropped.
    """
    boxed = [b.strip() for b in _boxed_contents(text)]
    boxed = [b for b in boxed if b]
    if boxed:
        return _clean_answer(boxed[-1])
    for match in reversed(list(_ANSWER_RE.finditer(text))):
        answer = _clean_answer(text[match.end() :].partition("\n")[0])
        if answer is not None:
            return answer
    return None


def is_final_step(text: str) -> bool:
    """Whether a step (full text or content) states a final answer."""
    return extract_final_answer(text) is not None


def segment_steps(text: str) -> list[str]:
    """Split a whole solution into normalized step texts ``"Step k: ..."``.

    With "Step k:" markers, each marker starts a step (text before the first
    marker is dropped; numbers are reassigned 1, 2, ...); without markers, each
    non-empty line is a step.  Steps that are empty after normalization are dropped.
    """
    markers = list(_MARKER_RE.finditer(text))
    if markers:
        bounds = [m.end() for m in markers]
        ends = [m.start() for m in markers[1:]] + [len(text)]
        pieces = [text[b:e] for b, e in zip(bounds, ends, strict=True)]
    else:
        pieces = text.splitlines()
    contents = [_drop_marker_remains(_collapse(_strip_headers(piece))) for piece in pieces]
    return [f"{step_header(i)} {c}" for i, c in enumerate((c for c in contents if c), start=1)]


def _drop_marker_remains(content: str) -> str:
    """Drop what the next marker left behind: "Step" of "Step Step 2:", "**" of "**Step 2:**"."""
    words = content.split(" ")
    while words and words[-1].strip("*#").lower() in ("step", ""):
        words.pop()
    return " ".join(words)


def step_content(step_text: str) -> str:
    """The content of a full step text (its header(s) removed, whitespace collapsed)."""
    return _collapse(_strip_headers(step_text))
