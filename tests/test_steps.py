"""The step format: parsing messy model output, final answers, segmentation."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presrm.steps import (
    STATUSES,
    STEP_END,
    extract_final_answer,
    is_final_step,
    parse_step,
    plain_solution_prompt,
    render_prefix,
    segment_steps,
    solution_user_message,
    step_content,
    step_header,
)


def test_prompt_pieces() -> None:
    assert STEP_END == "\n"
    assert step_header(1) == "Step 1:"
    assert step_header(12) == "Step 12:"
    assert plain_solution_prompt("What is 2 + 3?") == "Question: What is 2 + 3?\n"
    message = solution_user_message("What is 2 + 3?")
    assert message.endswith("What is 2 + 3?")
    assert "Step 1:" in message and "The answer is" in message
    prefix = render_prefix("Question: q\n", ["Step 1: 2 + 3 = 5", "Step 2: The answer is 5."])
    assert prefix == "Question: q\nStep 1: 2 + 3 = 5\nStep 2: The answer is 5.\n"
    assert render_prefix("P\n", []) == "P\n"


# (raw text written after "Step 2:", truncated, expected content, status, final answer)
MESSY_OUTPUTS = [
    (" 19 - 5 = 14", False, "19 - 5 = 14", "ok", None),
    ("19-5=14", False, "19-5=14", "ok", None),
    ("", False, "", "empty", None),
    ("   \t ", False, "", "empty", None),
    ("\nStep 3: 1 + 1 = 2", False, "", "empty", None),
    (" Step 2: 19 - 5 = 14", False, "19 - 5 = 14", "ok", None),  # repeated header
    (" Step Step 2: 19 - 5 = 14", False, "19 - 5 = 14", "ok", None),
    (" step: 19 - 5 = 14", False, "19 - 5 = 14", "ok", None),  # header without number
    (" **Step 2:** 5 * 2 = 10", False, "5 * 2 = 10", "ok", None),  # markdown header
    ("  19  -   5 =\t14  ", False, "19 - 5 = 14", "ok", None),  # whitespace collapsed
    (" 19 - 5 = 14\nStep 3: The answer is 14.\nStep 4:", False, "19 - 5 = 14", "ok", None),  # runaway lines
    (" 12 + 7 = 19 19 - 5 = 14 The answ", True, "12 + 7 = 19 19 - 5 = 14 The answ", "runaway", None),
    (
        " The answer is 14. The answer is 14. The",
        True,
        "The answer is 14. The answer is 14. The",
        "runaway",
        None,
    ),
    (" The answer is: 42.", False, "The answer is: 42.", "final", "42"),
    (" The answer is 14.", False, "The answer is 14.", "final", "14"),
    (" answer is $1,234", False, "answer is $1,234", "final", "1234"),
    (" The final answer is 1,234,567.", False, "The final answer is 1,234,567.", "final", "1234567"),
    (r" So \boxed{\frac{1}{2}}.", False, r"So \boxed{\frac{1}{2}}.", "final", r"\frac{1}{2}"),
    (" #### 72", False, "#### 72", "final", "72"),
    (" The answer is 12 + 7 = 19.", False, "The answer is 12 + 7 = 19.", "final", "19"),
    (" The answer is 14 apples.", False, "The answer is 14 apples.", "final", "14"),
    (" The answer is -7.", False, "The answer is -7.", "final", "-7"),
    (" The answer is 3.5.", False, "The answer is 3.5.", "final", "3.5"),
    (" The answer is", False, "The answer is", "no_answer", None),
    (r" \boxed{}", False, r"\boxed{}", "no_answer", None),
    (" I will find the answer by adding", False, "I will find the answer by adding", "no_answer", None),
    # Model text is data: markup, SQL quotes and format braces pass through untouched.
    (" [bold]12[/bold] + 7 = 19", False, "[bold]12[/bold] + 7 = 19", "ok", None),
    (" '); DROP TABLE nodes; -- {0} {x}", False, "'); DROP TABLE nodes; -- {0} {x}", "ok", None),
    (" The answer is {0}.", False, "The answer is {0}.", "final", "{0}"),
    (" ünïcode ∑ 5 – 3 = 2 🙂", False, "ünïcode ∑ 5 – 3 = 2 🙂", "ok", None),
    (" Stephen has 5 apples.", False, "Stephen has 5 apples.", "ok", None),  # not a header
    (" Step by step: 2 + 2 = 4", False, "Step by step: 2 + 2 = 4", "ok", None),
]


@pytest.mark.parametrize(("raw", "truncated", "content", "status", "answer"), MESSY_OUTPUTS)
def test_parse_step_messy_outputs(
    raw: str, truncated: bool, content: str, status: str, answer: str | None
) -> None:
    step = parse_step(raw, 2, truncated=truncated)
    assert step.content == content
    assert step.status == status
    assert step.final_answer == answer
    assert step.is_final == (status == "final")
    assert step.text == (f"Step 2: {content}" if content else "Step 2:")


def test_parse_step_truncated_but_ended_is_not_runaway() -> None:
    # The newline arrived in the last token: the step is complete.
    step = parse_step(" 12 + 7 = 19\n", 1, truncated=True)
    assert step.status == "ok"
    assert step.text == "Step 1: 12 + 7 = 19"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "\n",
        "\\boxed{",
        "\\boxed{{{",
        "}}}",
        "answer: ",
        "#### ",
        "Step",
        "Step 2:",
        "\x00\x1b[31m",
        "=" * 500,
        "The answer is " + "9" * 300,
        "answer is $",
        "answer is \\(\\)",
        "\\boxed{\\boxed{}}",
    ],
)
def test_parse_step_never_raises(raw: str) -> None:
    step = parse_step(raw, 1)
    assert step.status in STATUSES
    assert "\n" not in step.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"\boxed{\frac{1}{2}}", r"\frac{1}{2}"),
        (r"first \boxed{3} then \boxed{4}", "4"),  # last one wins
        (r"\boxed{1} and an unclosed \boxed{2", "1"),
        (r"\boxed{ {a}{b} }", "{a}{b}"),
        (r"The answer is \boxed{14}.", "14"),
        ("The answer is 14. The answer is 15.", "15"),
        ("The answer is: 42.", "42"),
        ("answer: 7", "7"),
        ("Answer = 8", "8"),
        ("#### 1,234", "1234"),
        ("The answer is $1,234.50.", "1234.50"),
        ("The answer is 3/4.", "3/4"),
        (r"The answer is $\frac{3}{4}$.", r"\frac{3}{4}"),
        (r"The answer is \(x+1\).", "x+1"),
        ("The answer is 2 + 3", "2 + 3"),
        ("The answer is 14\nStep 4: more", "14"),
        ("12 + 7 = 19", None),
        ("The answer is", None),
        ("", None),
    ],
)
def test_extract_final_answer(text: str, expected: str | None) -> None:
    assert extract_final_answer(text) == expected
    assert is_final_step(text) == (expected is not None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Let's go.\nStep 1: 12 + 7 = 19\nStep 2:   19 - 5 = 14 \n\nStep: The answer is 14.",
            ["Step 1: 12 + 7 = 19", "Step 2: 19 - 5 = 14", "Step 3: The answer is 14."],
        ),
        (  # all on one line
            "Step 1: 12+7=19 Step 2: 19-5=14 Step 3: The answer is 14.",
            ["Step 1: 12+7=19", "Step 2: 19-5=14", "Step 3: The answer is 14."],
        ),
        (  # wrong / missing numbers are renumbered, empty steps dropped
            "Step 1: a\nStep 1: b\nStep 7: c\nStep 4:\nStep Step 5: d",
            ["Step 1: a", "Step 2: b", "Step 3: c", "Step 4: d"],
        ),
        (  # a step continued on the next line
            "Step 1: 12 + 7\n= 19\nStep 2: The answer is 19.",
            ["Step 1: 12 + 7 = 19", "Step 2: The answer is 19."],
        ),
        (  # no markers: one step per non-empty line
            "She sold 48/2 = 24 clips.\n\n  Then 48+24 = 72.  \n",
            ["Step 1: She sold 48/2 = 24 clips.", "Step 2: Then 48+24 = 72."],
        ),
        ("Step 2.5 is not a marker\nnext", ["Step 1: Step 2.5 is not a marker", "Step 2: next"]),
        ("", []),
        ("  \n \n", []),
    ],
)
def test_segment_steps(text: str, expected: list[str]) -> None:
    assert segment_steps(text) == expected


def test_segment_round_trips_render_prefix() -> None:
    steps = ["Step 1: 4 + 5 = 9", "Step 2: 9 - 3 = 6", "Step 3: The answer is 6."]
    rendered = render_prefix("", steps)
    assert segment_steps(rendered) == steps
    assert [step_content(s) for s in steps] == ["4 + 5 = 9", "9 - 3 = 6", "The answer is 6."]


# Text built from the pieces that the parsers look for, so the fuzzing reaches them.
_TOKENS = st.sampled_from(
    ["Step", "step", " ", "\n", "1", "2", "12", ":", ".", "=", "+", "-", "*", "{", "}", "\\boxed{", "$", ",",
     "answer", "The answer is", "is", "####", "**", "[b]", "'", "{0}", "é", "∑"]
)  # fmt: skip
MESSY_TEXT = st.one_of(st.text(max_size=200), st.lists(_TOKENS, max_size=60).map("".join))


@settings(max_examples=300, deadline=None)
@given(MESSY_TEXT, st.integers(min_value=1, max_value=30), st.booleans())
def test_parsers_never_raise(text: str, k: int, truncated: bool) -> None:
    step = parse_step(text, k, truncated=truncated)
    assert step.status in STATUSES
    assert step.text.startswith(f"Step {k}:") and "\n" not in step.text
    assert step.is_final == (step.final_answer is not None)
    for segment in segment_steps(text):
        assert re.fullmatch(r"Step \d+: \S.*", segment)
    extract_final_answer(text)


@pytest.mark.parametrize(
    "junk",
    [
        "step " * 5000,
        "Step 1: " * 3000,
        "Step Step " * 3000 + "2:",
        "\\boxed{" * 3000,
        "\\boxed{" + "{" * 5000 + "}" * 5001,
        "answer is " * 3000,
        "*" * 10000,
        "1," * 10000,
        "The answer is " + "9" * 5000,
    ],
)
def test_parsers_are_fast_on_junk(junk: str) -> None:
    # Runaway generations can be long; no regex may go quadratic on them.
    start = time.perf_counter()
    parse_step(junk, 1)
    segment_steps(junk)
    extract_final_answer(junk)
    assert time.perf_counter() - start < 0.5
