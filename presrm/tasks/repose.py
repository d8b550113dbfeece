"""Re-posing the rest of a problem: the state some accepted steps reached, as a fresh question.

Checking an n-operation solution can then mean solving an easier (n - k)-operation problem from
the solution's own intermediate result, a view of the problem that shares no solution prefix with
the steps it checks (least-to-most prompting, self-verification by re-derivation). Only the
question's text and the model's steps are read, never an answer: a step's state is its *claimed*
result, right or wrong, which is exactly what the check is about.

The readers here are shared by the tasks that can re-pose (:mod:`presrm.tasks.arith`,
:mod:`presrm.tasks.rg`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from presrm.steps import extract_final_answer, step_content
from presrm.tasks.expr_steps import Node, equation_chains, format_number


@dataclass(frozen=True)
class Progress:
    """What accepted steps did: the operations they performed, in order (each the computed side
    of one equation with the result the step claims for it), and the last claimed result.
    ``answered`` holds a stated final answer, after which nothing remains."""

    operations: tuple[tuple[Node, Fraction], ...]
    state: Fraction | None
    answered: str | None


def read_progress(steps: Sequence[str]) -> Progress | None:
    """The operations and claimed results of ``steps`` (full step texts); None when a step makes
    no readable progress (no equation and no final answer) or an equation does not parse."""
    operations: list[tuple[Node, Fraction]] = []
    state: Fraction | None = None
    for text in steps:
        content = step_content(text)
        answer = extract_final_answer(content)
        if answer is not None:
            return Progress(tuple(operations), state, answer)
        chains = equation_chains(content)
        if not chains:
            return None
        for chain in chains:
            computed = next((side for side in chain if side.op), None)
            if computed is None:
                return None
            state = chain[-1].value  # the claimed result, even where it is wrong
            operations.append((computed, state))
    return Progress(tuple(operations), state, None)


def operation_count(node: Node) -> int:
    """Binary operations in an expression (a sign is none)."""
    if not node.op:
        return 0
    own = 1 if node.op in ("+", "-", "*", "/") else 0
    return own + sum(operation_count(child) for child in (node.left, node.right) if child is not None)


def wording_rng(question: str, state: str, wording: int) -> random.Random:
    """The draws of one wording: deterministic for (question, state, wording), so every judge
    call and every process re-poses the same rest with the same words."""
    return random.Random(f"repose:{wording}:{state}:{question}")


def number_text(value: Fraction) -> str:
    return format_number(value)


def substitute(root: Node, operations: Sequence[tuple[Node, Fraction]]) -> Node | None:
    """``root`` with each performed operation replaced by its claimed result, in order: an
    operation matches the leftmost innermost node of its operator whose operands are numbers of
    those values. None when one matches nothing (the step did not compute a part of it).
    A sign on a number folds into it (``-( 5 )`` is ``-5``), as the steps write it."""
    root = fold_signs(root)
    for computed, claimed in operations:
        if computed.op not in ("+", "-", "*", "/") or computed.left is None or computed.right is None:
            return None
        if computed.left.op or computed.right.op:
            return None  # a step that performs several operations at once is not read here
        replaced = _replace_first(root, computed.op, computed.left.value, computed.right.value, claimed)
        if replaced is None:
            return None
        root = fold_signs(replaced)
    return root


def fold_signs(node: Node) -> Node:
    """``node`` with every sign applied to a bare number folded into that number."""
    if not node.op:
        return node
    left = fold_signs(node.left) if node.left is not None else None
    right = fold_signs(node.right) if node.right is not None else None
    if node.op == "neg" and left is not None and not left.op:
        return Node(-left.value)
    return Node(node.value, node.op, left, right)


def _replace_first(node: Node, op: str, a: Fraction, b: Fraction, claimed: Fraction) -> Node | None:
    if not node.op:
        return None
    for side in ("left", "right"):
        child = getattr(node, side)
        if child is not None:
            new = _replace_first(child, op, a, b, claimed)
            if new is not None:
                left = new if side == "left" else node.left
                right = new if side == "right" else node.right
                return Node(node.value, node.op, left, right)
    left, right = node.left, node.right
    if node.op != op or left is None or right is None or left.op or right.op:
        return None
    return Node(claimed) if (left.value, right.value) == (a, b) else None


def render_expression(node: Node, parent: str = "", right: bool = False) -> str:
    """An expression as text, parenthesised only where the operators' precedence needs it."""
    if not node.op:
        return format_number(node.value)
    if node.op == "neg":
        assert node.left is not None
        return f"-( {render_expression(node.left)} )"
    assert node.left is not None and node.right is not None
    text = f"{render_expression(node.left, node.op)} {node.op} {render_expression(node.right, node.op, True)}"
    low = node.op in ("+", "-")
    needs = (
        (parent in ("*", "/") and low)
        or (right and parent in ("-", "/"))
        or (right and parent == "*" and node.op == "/")
    )
    return f"( {text} )" if needs else text
