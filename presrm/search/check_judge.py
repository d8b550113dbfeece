"""The check judge: the policy re-computes each equation of a step another way and the step
scores the share of those written checks that agree with it.

For a step ``a + b = c`` the policy writes ``c - b =``, ``c - a =`` (in the step's own context)
and ``a + b =`` right after the question (out of the context that produced the step), and each
check passes when its result is the step's ``a``, ``b`` or ``c``. Backward computation and a
changed context make errors other than the step's own, so agreement carries information that
the step's likelihood does not. No labels: the policy writes every number; code only compares.

A step without an equation (a final answer, prose) cannot be checked this way and gets the
neutral score 0.5, so a checked equation outranks it and a failed one falls below it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from presrm.model.generation import generate_steps
from presrm.model.policy import Policy
from presrm.search.judge import JudgeResult, PairRequest, PointRequest
from presrm.steps import render_prefix, step_content, step_header

MODE = "check"
UNCHECKED = 0.5
CHECK_TOKENS = 8  # room for a signed number and the line end

_NUM = r"-?\d+(?:\.\d+)?"
_EQUATION = re.compile(rf"({_NUM})\s*([+\-*/×x÷])\s*({_NUM})\s*=\s*({_NUM})")
_FIRST_NUMBER = re.compile(_NUM)
_CANON = {"+": "+", "-": "-", "*": "*", "×": "*", "x": "*", "/": "/", "÷": "/"}
_INVERSE = {"+": "-", "-": "+", "*": "/", "/": "*"}


@dataclass(frozen=True)
class Check:
    """One written check: the text the policy completes, in which context, and the number that
    agrees with the step."""

    expression: str  # e.g. "19 - 7 ="
    in_context: bool  # after the step's own prefix, or right after the question
    expected: str


def _fmt(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else str(float(value))


def equation_checks(step_text: str) -> list[Check]:
    """The written checks of every ``a op b = c`` in a step (none when it has no equation)."""
    checks: list[Check] = []
    for a, raw_op, b, c in _EQUATION.findall(step_content(step_text)):
        op = _CANON[raw_op]
        inverse = _INVERSE[op]
        checks.append(Check(f"{c} {inverse} {b} =", True, a))
        if op in "+*":  # commutative: either operand comes back
            checks.append(Check(f"{c} {inverse} {a} =", True, b))
        else:  # a - b = c  =>  a - c = b ;  a / b = c  =>  a / c = b
            checks.append(Check(f"{a} {op} {c} =", True, b))
        checks.append(Check(f"{a} {op} {b} =", False, c))
    return checks


def _same_number(written: str, expected: str) -> bool:
    match = _FIRST_NUMBER.search(written)
    if match is None:
        return False
    try:
        return Fraction(match.group()) == Fraction(expected)
    except (ValueError, ZeroDivisionError):
        return False


class CheckJudge:
    """Scores a step by the share of its written checks whose result agrees with it."""

    mode: str = MODE

    def __init__(self, policy: Policy, *, max_rows: int = 64) -> None:
        self.policy = policy
        self.max_rows = max_rows

    def _prefix(self, request: PointRequest, check: Check) -> str:
        prompt = self.policy.solution_prompt(request.question)
        if check.in_context:
            previous = list(request.previous_steps)
            head = render_prefix(prompt, previous, self.policy.step_format) + step_header(len(previous) + 1)
        else:
            head = prompt + step_header(1)
        return f"{head} {check.expression}"

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        """P(correct) read as the share of passed checks; Yes when more than half pass."""
        per_request = [equation_checks(r.step) for r in requests]
        prefixes = [
            self._prefix(r, c) for r, checks in zip(requests, per_request, strict=True) for c in checks
        ]
        written = (
            generate_steps(
                self.policy,
                prefixes,
                1,
                temperature=0.0,
                max_new_tokens=CHECK_TOKENS,
                seed=0,
                max_rows=self.max_rows,
            )
            if prefixes
            else []
        )
        results: list[JudgeResult] = []
        at = 0
        for checks in per_request:
            if not checks:
                results.append(JudgeResult(None, "no equation to check", None, UNCHECKED, UNCHECKED))
                continue
            lines = []
            passed = 0
            for check, samples in zip(checks, written[at : at + len(checks)], strict=True):
                text = samples[0].text.strip()
                ok = _same_number(text, check.expected)
                passed += ok
                where = "" if check.in_context else " (question only)"
                lines.append(f"{check.expression} {text} {'ok' if ok else 'differs'}{where}")
            at += len(checks)
            share = passed / len(checks)
            verdict = "Yes" if share > 0.5 else "No"
            results.append(JudgeResult(verdict, "\n".join(lines), "\n".join(lines), share, 1.0 - share))
        return results

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        """A beats B when more of A's checks pass (shares compared; equal shares: no verdict)."""
        points = [
            PointRequest(r.question, r.previous_steps, s) for r in requests for s in (r.step_a, r.step_b)
        ]
        scored = self.pointwise(points)
        out = []
        for k in range(len(requests)):
            a, b = scored[2 * k], scored[2 * k + 1]
            pa, pb = float(a.p_a or 0.0), float(b.p_a or 0.0)
            verdict = "A" if pa > pb else "B" if pb > pa else None
            out.append(JudgeResult(verdict, f"A: {a.raw_output}\nB: {b.raw_output}", None, pa, pb))
        return out
