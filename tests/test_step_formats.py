"""Multi-line steps (step_format = block | header) on hand-written outputs in the styles of current
instruct math models: display math on its own lines, bullet lists, narrative steps, boxed answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from presrm.config import load_config
from presrm.errors import ConfigError
from presrm.steps import (
    BLOCK,
    BLOCK_INSTRUCTION,
    INSTRUCTION,
    LINE,
    StepFormat,
    extract_final_answer,
    parse_step,
    render_prefix,
    resolve_step_format,
    segment_steps,
    solution_user_message,
)

HEADER = StepFormat("header")


def _step(generated: str, k: int, fmt: StepFormat = BLOCK) -> tuple[str, str]:
    """What the search keeps of a generation: the text up to the boundary, and the parsed step."""
    cut = fmt.step_end(generated)
    kept = generated if cut is None else generated[:cut]
    return kept, parse_step(kept, k, fmt=fmt).text


# Qwen2.5-Math-Instruct style: a heading sentence, then display math on its own lines, a blank line.
QWEN_STEP = (
    " Calculate the number of eggs left after breakfast and baking.\n"
    "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4:\n"
    "\\[\n"
    "16 - 3 - 4 = 9\n"
    "\\]\n"
    "\n"
    "Step 2: Calculate the money she makes.\n"
)

# Llama-3 style: a bullet list, the next step header right after it (no blank line).
LLAMA_STEP = (
    " Find the cost of the pencils.\n"
    "- Each pencil costs $2.\n"
    "- Tom buys 5 pencils.\n"
    "- Total: 5 × $2 = $10.\n"
    "**Step 2:** Add the notebook.\n"
)

# A narrative step: one paragraph of prose with the computation inside it.
NARRATIVE_STEP = (
    " To find how many apples Tom has now, we add the apples he bought to the ones he had."
    " He had 3 and bought 4, so he has 3 + 4 = 7 apples.\n\nStep 3:"
)


def test_display_math_stays_in_its_step() -> None:
    kept, text = _step(QWEN_STEP, 1)
    assert kept.endswith("\\]")  # cut at the blank line, the math kept whole
    assert text == (
        "Step 1: Calculate the number of eggs left after breakfast and baking.\n"
        "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4:\n"
        "\\[\n16 - 3 - 4 = 9\n\\]"
    )
    # The one-line format (the embedded default's) keeps only the heading, as before.
    assert parse_step(QWEN_STEP, 1).text == (
        "Step 1: Calculate the number of eggs left after breakfast and baking."
    )


def test_a_list_ends_at_the_next_step_header() -> None:
    kept, text = _step(LLAMA_STEP, 1)
    assert kept.endswith("$10.")
    assert text.splitlines() == [
        "Step 1: Find the cost of the pencils.",
        "- Each pencil costs $2.",
        "- Tom buys 5 pencils.",
        "- Total: 5 × $2 = $10.",
    ]
    assert parse_step(LLAMA_STEP, 1, fmt=HEADER).text == text  # header mode: the same boundary here


def test_narrative_step_is_one_step() -> None:
    _, text = _step(NARRATIVE_STEP, 2)
    assert text.startswith("Step 2: To find how many apples") and text.endswith("3 + 4 = 7 apples.")
    assert parse_step(NARRATIVE_STEP, 2, fmt=BLOCK).status == "ok"


def test_header_mode_keeps_blank_lines_inside_a_step() -> None:
    generated = " Set up the equation.\n\nLet x be the number of apples:\n\\[ x + 4 = 7 \\]\n\nStep 2:"
    assert BLOCK.step_end(generated) == generated.index("\n\n")
    kept, text = _step(generated, 1, HEADER)
    assert text == "Step 1: Set up the equation.\n\nLet x be the number of apples:\n\\[ x + 4 = 7 \\]"


def test_a_line_break_right_after_the_header_is_no_boundary() -> None:
    generated = "\n\n\\[\n12 \\times 7 = 84\n\\]\n\nStep 2:"
    _, text = _step(generated, 1)
    assert text == "Step 1: \\[\n12 \\times 7 = 84\n\\]"


# (what the model wrote after "Step k:", the final answer) in the styles instruct models end with
FINAL_STEPS = [
    (" Therefore, the final answer is: $\\boxed{18}$. I hope it is correct.", "18"),  # Llama-3 MATH
    (" The total is\n\\[\n9 \\times 2 = 18\n\\]\nSo she makes \\(\\boxed{18}\\) dollars every day.", "18"),
    (" Add them up:\n\\[\n\\boxed{1,234}\n\\]", "1234"),  # Qwen: the boxed answer as display math
    (" So the answer is 7.\n", "7"),
    (" He has 3 + 4 = 7 apples.\nThe answer is 7.", "7"),
    (" 16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars.\n#### 18", "18"),  # GSM8K style
    (" The answer is $42.50.", "42.50"),
]


@pytest.mark.parametrize(("generated", "answer"), FINAL_STEPS)
def test_final_answers_in_multi_line_steps(generated: str, answer: str) -> None:
    parsed = parse_step(generated, 4, fmt=BLOCK)
    assert parsed.status == "final" and parsed.is_final
    assert parsed.final_answer == answer == extract_final_answer(parsed.text)


def test_not_final_without_a_stated_answer() -> None:
    assert not parse_step(" So Tom has 7 apples now.", 2, fmt=BLOCK).is_final


def test_runaway_only_when_the_limit_came_before_the_boundary() -> None:
    assert parse_step(" 12 + 7 =\n19 - 5", 1, truncated=True, fmt=BLOCK).status == "runaway"
    assert parse_step(" 12 + 7 = 19\n\nStep 2: 19", 1, truncated=True, fmt=BLOCK).status == "ok"


QWEN_SOLUTION = """To determine how much Janet makes every day at the farmers' market, follow these steps:

1. **Calculate the number of eggs left:**
   Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4:
   \\[
   16 - 3 - 4 = 9
   \\]

2. **Calculate the money:**
   She sells each egg for $2:
   \\[
   9 \\times 2 = 18
   \\]

Therefore, Janet makes \\(\\boxed{18}\\) dollars every day."""


def test_segment_a_whole_solution_without_step_headers() -> None:
    steps = segment_steps(QWEN_SOLUTION, BLOCK)
    assert len(steps) == 4
    assert steps[1].splitlines()[0] == "Step 2: 1. **Calculate the number of eggs left:**"
    assert "16 - 3 - 4 = 9" in steps[1] and "9 \\times 2 = 18" in steps[2]
    assert extract_final_answer(steps[-1]) == "18"
    assert len(segment_steps(QWEN_SOLUTION)) > 10  # the one-line format: every line a step


def test_segment_with_headers_and_blank_lines() -> None:
    text = "Step 1: Heading.\nMath: 3 + 4 = 7\n\nStep 2: The answer is 7."
    assert segment_steps(text, BLOCK) == ["Step 1: Heading.\nMath: 3 + 4 = 7", "Step 2: The answer is 7."]
    assert segment_steps(text, HEADER) == segment_steps(text, BLOCK)
    # A blank line splits a headed step in block format, not in header format.
    split = "Step 1: Heading.\n\n3 + 4 = 7\nStep 2: The answer is 7."
    assert segment_steps(split, BLOCK) == [
        "Step 1: Heading.",
        "Step 2: 3 + 4 = 7",
        "Step 3: The answer is 7.",
    ]
    assert segment_steps(split, HEADER)[0] == "Step 1: Heading.\n\n3 + 4 = 7"


def test_rendered_block_solutions_round_trip() -> None:
    steps = ["Step 1: Total:\n\\[ 3 + 4 = 7 \\]", "Step 2: - 7 apples\n- 2 pears", "Step 3: The answer is 9."]
    rendered = render_prefix("", steps, BLOCK)
    assert rendered == "\n\n".join(steps) + "\n\n"
    assert segment_steps(rendered, BLOCK) == steps
    # Each rendered step is exactly what the generator keeps when it writes that step.
    for k, step in enumerate(steps, start=1):
        after_header = rendered.split(f"Step {k}:", 1)[1]
        assert _step(after_header, k)[1] == step


def test_formats_and_config() -> None:
    assert LINE.separator == "\n" and BLOCK.separator == "\n\n"
    assert solution_user_message("q") == f"{INSTRUCTION}\n\nProblem: q"  # unchanged for one-line steps
    assert solution_user_message("q", BLOCK).startswith(BLOCK_INSTRUCTION)
    assert resolve_step_format("auto", chat=True) == BLOCK
    assert resolve_step_format("auto", chat=False) == LINE
    assert resolve_step_format("header", chat=False) == HEADER
    assert load_config(None, ["step_format=block"]).step_format == "block"
    with pytest.raises(ConfigError, match="step_format"):
        load_config(None, ["step_format=paragraph"])
    with pytest.raises(ValueError, match="boundary"):
        StepFormat("paragraph")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab1:.)*# \t\n\\[]Stepx", max_size=80), st.sampled_from([BLOCK, HEADER]))
def test_boundary_is_the_first_one(text: str, fmt: StepFormat) -> None:
    cut = fmt.step_end(text)
    kept = text if cut is None else text[:cut]
    assert fmt.step_end(kept) is None  # nothing before the cut is already a boundary
    parsed = parse_step(text, 3, fmt=fmt)
    if fmt is BLOCK:
        assert "\n\n" not in parsed.text
    assert parsed.text.startswith("Step 3:")
