"""Steps of arithmetic expressions: reference reductions and a step checker.

Used by tasks whose problems carry their expression (reasoning-gym's ``chain_sum``,
``basic_arithmetic``, ``products``, ``decimal_chain_sum``). An expression uses numbers
(integers or decimals, optionally negative), ``+ - * /`` and parentheses. Values are exact
rationals; model-written text is only ever tokenized here, never evaluated as code.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from fractions import Fraction

_MAX_TERMS = 10  # subset sums of longer chains would be too many (2^n)
_MAX_CHARS = 400  # longer text is junk for a step; it is not scanned

_TOKEN_RE = re.compile(r"\s*(?:(\d{1,30}(?:\.\d{1,30})?)|([-+*/×x÷−()]))")
_OPS = {"×": "*", "x": "*", "÷": "/", "−": "-"}


@dataclass(frozen=True)
class Node:
    """A number (``op`` empty) or a binary operation on two nodes."""

    value: Fraction
    op: str = ""
    left: Node | None = None
    right: Node | None = None


class _Parser:
    """Recursive descent over tokens: sum := prod (('+'|'-') prod)*, prod := atom (('*'|'/') atom)*."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def sum(self) -> Node:
        node = self.prod()
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.prod()
            node = Node(node.value + right.value if op == "+" else node.value - right.value, op, node, right)
        return node

    def prod(self) -> Node:
        node = self.atom()
        while self.peek() in ("*", "/"):
            op = self.take()
            right = self.atom()
            if op == "/" and right.value == 0:
                raise ValueError("division by zero")
            value = node.value * right.value if op == "*" else node.value / right.value
            node = Node(value, op, node, right)
        return node

    def atom(self) -> Node:
        token = self.peek()
        if token is None:
            raise ValueError("unexpected end")
        self.take()
        if token == "(":
            node = self.sum()
            if self.peek() != ")":
                raise ValueError("missing )")
            self.take()
            return node
        if token in ("-", "+"):  # a sign
            inner = self.atom()
            return inner if token == "+" else _negate(inner)
        if token[0].isdigit():
            return Node(Fraction(token))
        raise ValueError(f"unexpected {token!r}")


def _negate(node: Node) -> Node:
    if not node.op:
        return Node(-node.value)
    return Node(-node.value, "neg", node, None)


def tokenize(text: str) -> list[str] | None:
    """Tokens of an expression, or None when it holds anything else."""
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            return None
        tokens.append(match.group(1) or _OPS.get(match.group(2), match.group(2)))
        pos = match.end()
    return tokens


def parse_expression(text: str) -> Node | None:
    """The expression tree of ``text``, or None when it is not an expression."""
    tokens = tokenize(text)
    if not tokens or len(text) > _MAX_CHARS:
        return None
    parser = _Parser(tokens)
    try:
        node = parser.sum()
    except (ValueError, IndexError):
        return None
    return node if parser.peek() is None else None


def format_number(value: Fraction) -> str:
    """An exact value as text: ``7``, ``-1.25``, or ``2/3`` when no finite decimal exists."""
    if value.denominator == 1:
        return str(value.numerator)
    den, twos, fives = value.denominator, 0, 0
    while den % 2 == 0:
        den, twos = den // 2, twos + 1
    while den % 5 == 0:
        den, fives = den // 5, fives + 1
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    places = max(twos, fives)
    scaled = abs(value) * 10**places
    digits = str(scaled.numerator // scaled.denominator).rjust(places + 1, "0")
    sign = "-" if value < 0 else ""
    return f"{sign}{digits[:-places]}.{digits[-places:]}"


def reference_steps(node: Node) -> list[str]:
    """One ``a op b = c`` step per operation, innermost and leftmost first."""
    steps: list[str] = []

    def walk(n: Node) -> None:
        if n.left is not None:
            walk(n.left)
        if n.right is not None:
            walk(n.right)
        if n.op in ("+", "-", "*", "/"):
            assert n.left is not None and n.right is not None
            a, b = format_number(n.left.value), format_number(n.right.value)
            steps.append(f"{a} {n.op} {b} = {format_number(n.value)}")

    walk(node)
    return steps


def _sum_terms(node: Node) -> list[Fraction] | None:
    """The signed terms of a maximal +/- chain rooted at ``node`` (None if it is not one)."""
    if node.op not in ("+", "-"):
        return None
    terms: list[Fraction] = []

    def flatten(n: Node, sign: int) -> None:
        if n.op in ("+", "-"):
            assert n.left is not None and n.right is not None
            flatten(n.left, sign)
            flatten(n.right, sign if n.op == "+" else -sign)
        else:
            terms.append(sign * n.value)

    flatten(node, 1)
    return terms


def allowed_values(root: Node) -> tuple[set[Fraction], set[Fraction]]:
    """(values a step may compute, magnitudes of partial changes it may compute).

    Every sub-expression's value; and within each +/- chain, the first term plus any subset
    of the others (a running total in any order), and the sum of any two or more of the other
    terms (a net change, compared by magnitude as in ``7 - 5 = 2``).
    """
    values: set[Fraction] = set()
    changes: set[Fraction] = set()

    def walk(n: Node, in_chain: bool) -> None:
        values.add(n.value)
        terms = None if in_chain else _sum_terms(n)
        if terms is not None and len(terms) <= _MAX_TERMS:
            first, rest = terms[0], terms[1:]
            for size in range(1, len(rest) + 1):
                for subset in itertools.combinations(rest, size):
                    values.add(first + sum(subset, Fraction(0)))
                    if size >= 2:
                        changes.add(abs(sum(subset, Fraction(0))))
        for child in (n.left, n.right):
            if child is not None:
                walk(child, n.op in ("+", "-") and child.op in ("+", "-"))

    walk(root, False)
    return values, changes


# An equation chain in free text: expressions of numbers, operators and parentheses joined by "=".
_ATOM = r"[(\s]*[-−]?\s?\d{1,30}(?:\.\d{1,30})?[)\s]*"
_EXPR = rf"{_ATOM}(?:[-+*/×÷−]{_ATOM})*"
_CHAIN_RE = re.compile(rf"(?<![\w.]){_EXPR}(?:={_EXPR})+")


def equation_chains(content: str) -> list[list[Node]] | None:
    """Every equation chain in ``content`` as parsed sides; None if a side does not parse."""
    if len(content) > _MAX_CHARS:
        return None
    chains = []
    for match in _CHAIN_RE.finditer(content):
        sides = [parse_expression(side) for side in match.group(0).split("=")]
        if any(side is None for side in sides):
            return None
        chains.append([side for side in sides if side is not None])
    return chains


def leaves(node: Node) -> list[Fraction]:
    if not node.op:
        return [node.value]
    return [x for child in (node.left, node.right) if child is not None for x in leaves(child)]


def check_expression_step(
    root: Node, question_numbers: set[Fraction], previous_contents: list[str], content: str
) -> bool | None:
    """Whether the equations of one step are right; None when the step has none.

    1. Every chain's sides have one value. 2. Every operand is, by magnitude, a number of the
    question or a result of an earlier chain (an earlier step or earlier in this step).
    3. Every side with an operation computes an allowed value (:func:`allowed_values`).
    """
    values, changes = allowed_values(root)
    available = {abs(x) for x in question_numbers}
    for previous in previous_contents:
        for chain in equation_chains(previous) or []:
            available.add(abs(chain[-1].value))
    chains = equation_chains(content)
    if chains is None:
        return False
    if not chains:
        return None
    for chain in chains:
        if len({side.value for side in chain}) != 1:
            return False
        for side in chain:
            if not side.op:
                continue
            if any(abs(x) not in available for x in leaves(side)):
                return False
            if side.value not in values and abs(side.value) not in changes:
                return False
        available.add(abs(chain[-1].value))
    return True
