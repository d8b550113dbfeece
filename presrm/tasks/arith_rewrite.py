"""Surface rewrites of an arith question: the same numbers and operations in other words.

A rewrite changes the name (and pronoun), the item and the phrasing of every sentence, and
keeps every number and the order of the operations, so it has the same solution steps. The
paraphrase judge asks the policy to solve each rewrite: a step the model writes under most
wordings is one it does not owe to the surface of one question. Only the question's text is
read, never its answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

from presrm.tasks.arith_words import ITEMS, NAMES, QUESTION_LEFT, QUESTIONS, STARTS, VERBS
from presrm.tasks.base import Reposed
from presrm.tasks.repose import number_text, operation_count, read_progress, wording_rng

_FIELDS = {
    "{name}": r"(?P<name>[A-Z][a-z]+)",
    "{a}": r"(?P<a>\d+)",
    "{b}": r"(?P<b>\d+)",
    "{item}": r"(?P<item>[a-z]+)",
}


def _pattern(template: str) -> re.Pattern[str]:
    text = re.escape(template)
    for field, group in _FIELDS.items():
        text = text.replace(re.escape(field), group)
    return re.compile(f"^{text}$")


_START_RES = [_pattern(t) for t in STARTS]
_VERB_RES = [(op, _pattern(t)) for op, templates in VERBS.items() for t in templates]
_QUESTION_RE = re.compile(r"^(?P<first>[^.]*\.) (?:He|She) (?P<actions>.*)\. (?P<ask>How many [^?]*\?)$")


def parse_question(question: str) -> tuple[int, list[tuple[str, int]]] | None:
    """The start amount and the operations of a question the arith task wrote; None otherwise."""
    whole = _QUESTION_RE.match(question.strip())
    if whole is None:
        return None
    start = next((m for m in (r.match(whole["first"]) for r in _START_RES) if m), None)
    if start is None:
        return None
    ops: list[tuple[str, int]] = []
    for action in whole["actions"].split(", then "):
        found = next(((op, m) for op, r in _VERB_RES if (m := r.match(action))), None)
        if found is None:
            return None
        ops.append((found[0], int(found[1]["b"])))
    return int(start["a"]), ops


def render_question(
    pick: Callable[[Sequence[Any]], Any], coin: Callable[[], float], start: int, ops: list[tuple[str, int]]
) -> str:
    """One wording of a start amount and its operations; ``pick`` chooses from a word list and
    ``coin`` draws in [0, 1) (the task's generator passes its own fast draws)."""
    name, pron = pick(NAMES)
    item = pick(ITEMS)
    first = pick(STARTS).format(name=name, a=start, item=item)
    actions = ", then ".join(pick(VERBS[op]).format(b=b) for op, b in ops)
    question = QUESTION_LEFT if ops[-1][0] == "-" and coin() < 0.5 else pick(QUESTIONS)
    ask = question.format(item=item, pron=pron, name=name)
    return f"{first} {pron.capitalize()} {actions}. {ask}"


def rewrite_question(question: str, n: int, seed: int) -> list[str]:
    """Up to ``n`` distinct rewrites of ``question``, none equal to it; deterministic for
    (question, seed). A question the task did not write has none."""
    parsed = parse_question(question)
    if parsed is None:
        return []
    start, ops = parsed
    rng = random.Random(f"arith-rewrite:{seed}:{question}")
    seen = {question}
    out: list[str] = []
    for _ in range(20 * n):
        if len(out) == n:
            break
        text = render_question(rng.choice, rng.random, start, ops)
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


def repose_question(
    question: str, accepted_steps: Sequence[str], wording: int, limit: int | None
) -> Reposed | None:
    """:meth:`presrm.tasks.arith.ArithTask.repose`: the rest of ``question`` after the steps, from
    the last result they claim, in the task's words."""
    parsed = parse_question(question)
    progress = read_progress(accepted_steps)
    if parsed is None or progress is None:
        return None
    start, ops = parsed
    if progress.answered is not None:
        return Reposed(None, progress.answered, 0)
    done = sum(operation_count(op) for op, _ in progress.operations)
    state = progress.state if progress.state is not None else Fraction(start)
    if done > len(ops) or state < 0 or state.denominator != 1:
        return None
    rest, text = ops[done:] if limit is None else ops[done : done + limit], number_text(state)
    if not rest:
        return Reposed(None, text, 0)
    rng = wording_rng(question, text, wording)
    return Reposed(
        render_question(lambda seq: rng.choice(seq), rng.random, int(state), rest), text, len(rest)
    )


_INVERSE = {"+": "-", "-": "+"}


def inverse_question(question: str, steps: Sequence[str], wording: int) -> Reposed | None:
    """:meth:`presrm.tasks.arith.ArithTask.repose_inverse`: the question's operation that the last
    step performed, inverted and applied to the result it claims; ``state`` is the value before it::

        Tom has 12 apples. He buys 7 more, then gives away 5. How many ...?
        "Step 1: 12 + 7 = 20":  Ana has 20 pens. She gives away 7. How many ...?  (must be 12)

    None where the steps cannot be read, where the last one performs no single operation of the
    question, or where that operation is a multiplication."""
    parsed = parse_question(question)
    if parsed is None or not steps:
        return None
    before, after = read_progress(steps[:-1]), read_progress(steps)
    if before is None or after is None or before.answered is not None or after.answered is not None:
        return None
    start, ops = parsed
    done = sum(operation_count(op) for op, _ in before.operations)
    performed = after.operations[len(before.operations) :]
    if len(performed) != 1 or operation_count(performed[0][0]) != 1 or done >= len(ops):
        return None  # the step does not perform exactly the question's next operation
    op, amount = ops[done]
    state = before.state if before.state is not None else Fraction(start)
    claimed = after.state
    if op not in _INVERSE or claimed is None or claimed < 0 or claimed.denominator != 1:
        return None
    text = number_text(claimed)
    rng = wording_rng(f"inverse:{question}", text, wording)
    inverse = render_question(lambda seq: rng.choice(seq), rng.random, int(claimed), [(_INVERSE[op], amount)])
    return Reposed(inverse, number_text(state), 1)
