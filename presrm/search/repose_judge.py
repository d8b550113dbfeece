"""The re-posing judge: a step is right when the problem, re-posed as a fresh question from the
step's result, comes out where the same question from before the step does.

For a candidate next step, the task re-poses the problem (:meth:`Task.repose`) from the state the
accepted steps reached, the step's own operation still to do (the view *before* the step), and
from the result the step claims (the view *after* it). The policy solves them greedily. A right
step leaves the answer unchanged; a wrong result changes it. ``span`` says how much of the
problem a view holds:

- ``rest``: all of the rest. Before the step, its operation and every later one; after it, the
  later ones. The first step's view before it is the whole question again.
- ``step``: the step's own operation only. Before the step, a one-operation question from the
  accepted state; after it, the claimed result itself (nothing to solve).

Each view is a shorter question than the one being solved and shares no solution prefix with the
checked steps, so a slip the model makes deep in a long solution (carrying a wrong number into a
step) is not simply repeated by the check, as it is by every view that keeps the solution prefix.
No label is read: only the question's text, the steps and the policy's own answers.

A step that states the final answer is checked against the view before it (nothing is left after
it). With several wordings every (before, after) pair of wordings is one comparison, and a step's
score is the share that agree: a graded score with up to ``wordings² + 1`` levels.

With ``inverse`` (step span only) each step is also undone (:meth:`Task.repose_inverse`): from the
result it claims, its operation inverted, as a fresh one-operation question whose answer must come
back to the value before the step. Its arithmetic is other facts than the step's own (``20 - 7``
checks ``12 + 7 = 20``), so a slip the model makes the same way in the step and in its forward view
(an addition from 0 that comes out one too high) need not repeat there. Each wording is one more
comparison in the share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from presrm.answers import answers_match
from presrm.errors import ConfigError
from presrm.model.encoding import encode_continuations
from presrm.model.generation import FINISH_NEWLINE, StepSample, generate_steps
from presrm.model.policy import Policy
from presrm.model.scoring import sequence_logprobs
from presrm.search.judge import JudgeResult, PairRequest, PointRequest
from presrm.search.reposers import make_reposer
from presrm.search.solve import Solved, solve_greedily
from presrm.steps import render_prefix, step_content, step_header
from presrm.tasks.base import Reposed, Task

Context = tuple[str, tuple[str, ...]]  # a question and the steps after it
MODE = "repose"
SCORE_KIND = "repose_agree"
SPANS = ("rest", "step")


@dataclass(frozen=True)
class _View:
    """One wording of one rest: its question (None: nothing left) and the answer it comes to."""

    question: str | None
    answer: str | None


@dataclass(frozen=True)
class _Undone:
    """One wording of a step undone: its question, the policy's answer, and the value before the
    step that a right step's inverse comes back to."""

    question: str
    answer: str | None
    expected: str


class ReposeJudge:
    """Scores steps by whether the policy's solves of the rest before and after them agree."""

    mode: str = MODE

    def __init__(
        self,
        policy: Policy,
        task: Task,
        *,
        wordings: int,
        max_step_tokens: int,
        span: str = "rest",
        inverse: bool = False,
        max_rows: int = 64,
        max_solve_steps: int = 10,
    ) -> None:
        if wordings < 1:
            raise ValueError("wordings must be >= 1")
        if span not in SPANS:
            raise ValueError(f"span: expected one of {', '.join(SPANS)}, got {span!r}")
        if inverse and span != "step":
            raise ConfigError("judge.repose_inverse undoes one step: it needs judge.repose_span = 'step'")
        self.reposer = make_reposer(policy, task, span, max_rows)
        if inverse:
            task.repose_inverse("", ())  # a task that cannot undo a step refuses here, in one line
        self.task = task
        self.inverse = inverse
        self.policy = policy
        self.wordings = wordings
        self.max_step_tokens = max_step_tokens
        self.span = span
        self.max_rows = max_rows
        self.max_solve_steps = max_solve_steps  # a solve's step budget when the rest's length is unknown
        # Solves of re-posed questions, kept for the expansion's scoring after its proposals.
        self._solved: dict[str, Solved] = {}

    def _views(self, contexts: Sequence[Context]) -> dict[Context, list[_View] | None]:
        """Every context's rest in every wording with the policy's answer to it, all solved in one
        batched call. None for a context whose steps cannot be read."""
        unique = list(dict.fromkeys(contexts))
        items = [(q, steps, w) for q, steps in unique for w in range(self.wordings)]
        reposed = iter(self.reposer.repose_many(items))
        rests = {c: [next(reposed) for _ in range(self.wordings)] for c in unique}
        questions = [
            r.question for rs in rests.values() for r in rs if r is not None and r.question is not None
        ]
        lengths = [r.remaining for rs in rests.values() for r in rs if r is not None]
        # The operations, the answer line and one step of slack (the whole budget when unknown).
        longest = max((self.max_solve_steps if n is None else n + 2 for n in lengths), default=0)
        solved = self._solve(questions, min(longest, self.max_solve_steps))
        answers = {q: s.answer for q, s in zip(questions, solved, strict=True)}
        out: dict[Context, list[_View] | None] = {}
        for context, rs in rests.items():
            if any(r is None for r in rs):
                out[context] = None
                continue
            out[context] = [
                _View(r.question, r.state if r.question is None else answers[r.question])
                for r in rs
                if r is not None
            ]
        return out

    def _solve(self, questions: list[str], max_steps: int) -> list[Solved]:
        """Greedy solves, each question once (also across the calls of one expansion)."""
        if len(self._solved) > 100_000:
            self._solved.clear()  # a bound on memory; a dropped solve is only solved again
        todo = [q for q in dict.fromkeys(questions) if q not in self._solved]
        fresh = solve_greedily(
            self.policy,
            todo,
            max_steps=max_steps,
            max_step_tokens=self.max_step_tokens,
            max_rows=self.max_rows,
        )
        self._solved.update(zip(todo, fresh, strict=True))
        return [self._solved[q] for q in questions]

    def proposals(self, contexts: Sequence[Context]) -> list[str | None]:
        """The next step the policy writes for the rest re-posed as a fresh question (its first
        wording): the first step of its greedy solve, or the final answer when nothing is left.
        None where the steps cannot be re-posed or the solve wrote no usable step."""
        unique = list(dict.fromkeys(contexts))
        rests = dict(
            zip(unique, self.reposer.repose_many([(q, steps, 0) for q, steps in unique]), strict=True)
        )
        questions = [r.question for r in rests.values() if r is not None and r.question is not None]
        lengths = [r.remaining for r in rests.values() if r is not None]
        longest = max((self.max_solve_steps if n is None else n + 2 for n in lengths), default=0)
        solved = dict(zip(questions, self._solve(questions, min(longest, self.max_solve_steps)), strict=True))
        out: dict[Context, str | None] = {}
        for context, rest in rests.items():
            if rest is None:
                out[context] = None
            elif rest.question is None:
                out[context] = f"The answer is {rest.state}."
            else:
                steps = solved[rest.question].steps
                out[context] = step_content(steps[0]) if steps else None
        return [out[c] for c in contexts]

    def first_candidates(self, contexts: Sequence[Context]) -> list[list[StepSample]]:
        """Per context: the policy's greedy next step, then the re-posed rest's step (when it is
        another step). The latter was written under another prompt, so its token log-probability is
        scored under this one: every candidate's ``logprob`` is the policy's at this prefix."""
        fmt = self.policy.step_format
        prefixes = [
            render_prefix(self.policy.solution_prompt(q), list(steps), fmt) + step_header(len(steps) + 1)
            for q, steps in contexts
        ]
        greedy = generate_steps(
            self.policy,
            prefixes,
            1,
            temperature=0.0,
            max_new_tokens=self.max_step_tokens,
            seed=0,
            max_rows=self.max_rows,
        )
        proposed = self.proposals(contexts)
        extra = [
            i
            for i, (content, (sample,)) in enumerate(zip(proposed, greedy, strict=True))
            if content is not None and content != step_content(sample.text)
        ]
        texts = [f" {proposed[i]}" for i in extra]
        logprobs = sequence_logprobs(
            self.policy, [prefixes[i] for i in extra], [t + fmt.separator for t in texts]
        )
        tokens = encode_continuations(self.policy, [t + fmt.separator for t in texts])
        out = [[sample] for (sample,) in greedy]
        for i, text, logprob, ids in zip(extra, texts, logprobs, tokens, strict=True):
            out[i].append(StepSample(text, tuple(ids), len(ids), logprob, FINISH_NEWLINE))
        return out

    def pointwise(self, requests: list[PointRequest]) -> list[JudgeResult]:
        """P(right) = the share of (before, after) wording pairs whose answers agree; Yes at half."""
        befores: list[Context] = [(r.question, r.previous_steps) for r in requests]
        afters: list[Context] = [(r.question, (*r.previous_steps, r.step)) for r in requests]
        if self.span == "rest":
            views = self._views(befores + afters)
            return [_judge(views[b], views[a]) for b, a in zip(befores, afters, strict=True)]
        before_views = self._views(befores)
        # After the step only its claimed result matters: the state, with nothing to solve.
        after_views = {c: _claimed(self.reposer.claimed(*c)) for c in dict.fromkeys(afters)}
        undone = self._undone(afters) if self.inverse else {}
        return [
            _judge(before_views[b], after_views[a], undone.get(a, []))
            for b, a in zip(befores, afters, strict=True)
        ]

    def _undone(self, afters: Sequence[Context]) -> dict[Context, list[_Undone]]:
        """Every step undone in every wording, with the policy's answer to it, solved in one batched
        call; a step the task cannot undo (a multiplication, a final answer) has no such check."""
        unique = list(dict.fromkeys(afters))
        asked = {
            c: [r for w in range(self.wordings) if (r := self.task.repose_inverse(c[0], c[1], w)) is not None]
            for c in unique
        }
        questions = [r.question for rs in asked.values() for r in rs if r.question is not None]
        answers = {q: s.answer for q, s in zip(questions, self._solve(questions, 3), strict=True)}
        return {
            c: [_Undone(r.question, answers[r.question], r.state) for r in rs if r.question is not None]
            for c, rs in asked.items()
        }

    def pairwise(self, requests: list[PairRequest]) -> list[JudgeResult]:
        """A beats B when more of A's comparisons agree; equal shares are no verdict."""
        points = [
            PointRequest(r.question, r.previous_steps, s) for r in requests for s in (r.step_a, r.step_b)
        ]
        judged = self.pointwise(points)
        out = []
        for i, _r in enumerate(requests):
            a, b = judged[2 * i], judged[2 * i + 1]
            share_a, share_b = a.p_a or 0.0, b.p_a or 0.0
            verdict = "A" if share_a > share_b else "B" if share_b > share_a else None
            raw = f"A: {a.raw_output}\nB: {b.raw_output}"
            out.append(JudgeResult(verdict, raw, None, share_a, share_b))
        return out


def _claimed(rest: Reposed | None) -> list[_View] | None:
    return None if rest is None else [_View(None, rest.state)]


def _judge(
    before: list[_View] | None, after: list[_View] | None, undone: Sequence[_Undone] = ()
) -> JudgeResult:
    if before is None:
        return JudgeResult(
            None, "the accepted steps cannot be read as progress: no rest to re-pose", None, None, None
        )
    if after is None:
        return JudgeResult("No", "the step makes no progress the task can re-pose", None, 0.0, 1.0)
    agree = sum(
        bool(b.answer is not None and a.answer is not None and answers_match(a.answer, b.answer))
        for b in before
        for a in after
    )
    agree += sum(bool(u.answer is not None and answers_match(u.answer, u.expected)) for u in undone)
    total = len(before) * len(after) + len(undone)
    share = agree / total
    lines = [f"rest before the step: {_show(v)}" for v in before]
    lines += [f"rest after the step: {_show(v)}" for v in after]
    lines += [
        f"step undone: {u.question} -> {_answer(u.answer)} (before the step: {u.expected})" for u in undone
    ]
    lines.append(f"{agree} of {total} agree")
    return JudgeResult("Yes" if share >= 0.5 else "No", "\n".join(lines), None, share, 1.0 - share)


def _answer(answer: str | None) -> str:
    return answer if answer is not None else "(no answer)"


def _show(view: _View) -> str:
    """A view for the judgment's raw text (the inspector shows why a step was rejected)."""
    answer = _answer(view.answer)
    if view.question is None:
        return f"nothing left to do, the value is {answer}"
    return f"{view.question} -> {answer}"
