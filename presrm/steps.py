"""The step format: the one place that decides what a solution step looks like.

A solution is a sequence of steps. In the ``line`` format (:data:`LINE`, what the embedded
character-level model writes) a step is one line::

    Step 1: 12 + 7 = 19
    Step 2: 19 - 5 = 14
    Step 3: The answer is 14.

In the ``block`` format (:data:`BLOCK`, the paper's IFT format, how instruct models write)
a step may span lines — display math on its own lines, a list — and ends at a blank line or
at the next ``Step k:`` header; steps are separated by a blank line. ``header`` ends a step
only at the next header (blank lines may sit inside a step).

The search appends :func:`step_header` to the prefix and lets the model write the rest of
the step; generation stops where :meth:`StepFormat.step_end` says.  Every function here
takes model-written text as plain data: nothing is evaluated, formatted or interpreted as
markup, and no function raises on any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

STEP_END = "\n"
"""The line format's step separator: a step is one line, generation stops at a newline."""

INSTRUCTION = (
    "Solve the problem step by step. Write one step per line, starting with "
    "'Step 1:', 'Step 2:' and so on. Each step does one small calculation. "
    "The last step says 'The answer is N.' where N is the final answer."
)
"""Instruction for chat models, line format (also accepted: a final ``\\boxed{N}``)."""

BLOCK_INSTRUCTION = (
    "Solve the problem step by step. Start each step with 'Step 1:', 'Step 2:' and so on, "
    "and leave a blank line after each step. "
    "The last step says 'The answer is N.' where N is the final answer."
)
"""Instruction for chat models, block and header formats (a step may take several lines)."""

BOUNDARIES = ("line", "block", "header")

# Where a multi-line step ends: a blank line, or a line that starts the next numbered step.
_BLANK_LINE = r"\n[ \t]*\n"
_NEXT_HEADER = r"\n[ \t]*[*#]*[ \t]*step[ \t]*\d+[ \t]*(?:[:)]|\.(?!\d))"
_BLOCK_END_RE = re.compile(f"{_BLANK_LINE}|{_NEXT_HEADER}", re.IGNORECASE)
_HEADER_END_RE = re.compile(_NEXT_HEADER, re.IGNORECASE)


@dataclass(frozen=True)
class StepFormat:
    """How steps are delimited (one of :data:`BOUNDARIES`); see the module doc."""

    boundary: str = "line"

    def __post_init__(self) -> None:
        if self.boundary not in BOUNDARIES:
            raise ValueError(f"step boundary must be one of {BOUNDARIES}, got {self.boundary!r}")

    @property
    def separator(self) -> str:
        """What follows every step in a rendered solution."""
        return STEP_END if self.boundary == "line" else "\n\n"

    @property
    def multiline(self) -> bool:
        return self.boundary != "line"

    def step_end(self, generated: str) -> int | None:
        """Where the step the model is writing ends in ``generated`` (the text after "Step k:"):
        the index of the boundary's first character, or None while the step goes on.

        Leading blank lines are not a boundary: a model may put a line break after the header.
        """
        if self.boundary == "line":
            cut = generated.find(STEP_END)
            return None if cut < 0 else cut
        start = len(generated) - len(generated.lstrip())
        found = (_BLOCK_END_RE if self.boundary == "block" else _HEADER_END_RE).search(generated, start)
        return None if found is None else found.start()

    def instruction(self) -> str:
        return INSTRUCTION if self.boundary == "line" else BLOCK_INSTRUCTION


LINE = StepFormat("line")
BLOCK = StepFormat("block")


def resolve_step_format(boundary: str, chat: bool) -> StepFormat:
    """``auto``: multi-line ``block`` steps for chat models, one-line steps for raw LMs (the
    embedded character-level default writes one line per step)."""
    if boundary == "auto":
        return BLOCK if chat else LINE
    return StepFormat(boundary)


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


def solution_user_message(question: str, fmt: StepFormat = LINE) -> str:
    """The user turn for chat models: the instruction, then the question."""
    return f"{fmt.instruction()}\n\nProblem: {question}"


def plain_solution_prompt(question: str) -> str:
    """Compact raw-LM prompt (character-level models pay per character)."""
    return f"Question: {question}\n"


def render_prefix(prompt: str, steps: list[str], fmt: StepFormat = LINE) -> str:
    """The prompt followed by each full step text and its separator."""
    return prompt + "".join(step + fmt.separator for step in steps)


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


def _block_content(text: str) -> str:
    """A multi-line step's content: headers dropped, spaces collapsed within each line,
    outer blank lines dropped and inner runs of blank lines reduced to one."""
    lines = [_collapse(line) for line in _strip_headers(text).split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def parse_step(raw_generated: str, k: int, *, truncated: bool = False, fmt: StepFormat = LINE) -> ParsedStep:
    """Normalize what the model wrote after ``step_header(k)``.

    Only the text before the format's boundary counts (line format: the first line).
    ``truncated`` says generation hit its token limit before the boundary.
    """
    if fmt.multiline:
        cut = fmt.step_end(raw_generated)
        ended = cut is not None
        content = _block_content(raw_generated if cut is None else raw_generated[:cut])
    else:
        first_line, newline, _rest = raw_generated.partition("\n")
        ended = bool(newline)
        content = _collapse(_strip_headers(first_line))
    header = step_header(k)
    text = f"{header} {content}" if content else header
    if not content:
        return ParsedStep(text, content, False, None, STATUS_EMPTY)
    if truncated and not ended:
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


_BLANK_SPLIT_RE = re.compile(_BLANK_LINE)


def segment_steps(text: str, fmt: StepFormat = LINE) -> list[str]:
    """Split a whole solution into normalized step texts ``"Step k: ..."``.

    With "Step k:" markers, each marker starts a step (text before the first
    marker is dropped; numbers are reassigned 1, 2, ...); without markers, each
    non-empty line is a step (``block`` and ``header`` formats: each paragraph
    between blank lines). The ``block`` format also ends a step at a blank line.
    Steps that are empty after normalization are dropped.
    """
    markers = list(_MARKER_RE.finditer(text))
    if markers:
        bounds = [m.end() for m in markers]
        ends = [m.start() for m in markers[1:]] + [len(text)]
        pieces = [text[b:e] for b, e in zip(bounds, ends, strict=True)]
        if fmt.boundary == "block":
            pieces = [part for piece in pieces for part in _BLANK_SPLIT_RE.split(piece)]
    elif fmt.multiline:
        pieces = _BLANK_SPLIT_RE.split(text)
    else:
        pieces = text.splitlines()
    if fmt.multiline:
        contents = [_drop_marker_remains(_block_content(piece)) for piece in pieces]
    else:
        contents = [_drop_marker_remains(_collapse(_strip_headers(piece))) for piece in pieces]
    return [f"{step_header(i)} {c}" for i, c in enumerate((c for c in contents if c), start=1)]


def _drop_marker_remains(content: str) -> str:
    """Drop what the next marker left behind: "Step" of "Step Step 2:", "**" of "**Step 2:**"."""
    *lines, last = content.split("\n")
    words = last.split(" ")
    while words and words[-1].strip("*#").lower() in ("step", ""):
        words.pop()
    if not words and lines:  # the remains filled the last line of a multi-line step
        return _drop_marker_remains("\n".join(lines))
    return "\n".join([*lines, " ".join(words)])


def step_content(step_text: str) -> str:
    """The content of a full step text (its header(s) removed, whitespace collapsed)."""
    return _collapse(_strip_headers(step_text))
