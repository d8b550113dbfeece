"""Re-posing written by the policy itself, for chat models on tasks that cannot re-pose their own
questions (least-to-most style): the model is shown the question and the steps so far and asked to
write what is left as a new, self-contained question.

The question it writes is data: it is only ever put into the next prompt, never parsed as anything
but text. Its quality depends on the model; a 135M model (the ``smollm2`` built-in) writes the
mechanics (one line per request, batched) but not a question worth checking against.
"""

from __future__ import annotations

from collections.abc import Sequence

from presrm.model.generation import NEWLINE_STOP, generate_steps
from presrm.model.policy import Policy
from presrm.steps import extract_final_answer, step_content
from presrm.tasks.base import Reposed
from presrm.tasks.expr_steps import format_number
from presrm.tasks.repose import read_progress

REST_INSTRUCTION = (
    "Rewrite what is left of this problem as a new question that starts from the result of the"
    " last step and needs no earlier step. Write only the question, on one line."
)
STEP_INSTRUCTION = (
    "Write the next single calculation of this problem as a new question that starts from the"
    " result of the last step. Write only the question, on one line."
)
MAX_QUESTION_TOKENS = 96


def _request(question: str, steps: Sequence[str], instruction: str) -> str:
    shown = "\n".join(steps) if steps else "(none yet)"
    return f"Problem: {question}\n\nSteps so far:\n{shown}\n\n{instruction}"


class PolicyReposer:
    """``Task.repose``'s contract, written by the policy: a fresh question per (question, steps,
    wording); a stated final answer leaves nothing to ask. Wordings after the first are sampled."""

    def __init__(self, policy: Policy, *, span: str, max_rows: int = 64) -> None:
        if not policy.chat:
            raise ValueError("the policy writes re-posed questions only as a chat model")
        self.policy = policy
        self.instruction = STEP_INSTRUCTION if span == "step" else REST_INSTRUCTION
        self.max_rows = max_rows

    def repose_many(self, items: Sequence[tuple[str, tuple[str, ...], int]]) -> list[Reposed | None]:
        """Every (question, steps, wording) re-posed, in one batched generation per wording."""
        out: list[Reposed | None] = [None] * len(items)
        todo: dict[int, list[int]] = {}
        for i, (_question, steps, wording) in enumerate(items):
            answered = next(
                (a for s in steps if (a := extract_final_answer(step_content(s))) is not None), None
            )
            if answered is not None:
                out[i] = Reposed(None, answered, 0)
                continue
            todo.setdefault(wording, []).append(i)
        for wording, indices in todo.items():
            prompts = [
                self.policy.complete_prompt(_request(items[i][0], items[i][1], self.instruction))
                for i in indices
            ]
            samples = generate_steps(
                self.policy,
                prompts,
                1,
                temperature=0.0 if wording == 0 else 0.7,
                max_new_tokens=MAX_QUESTION_TOKENS,
                seed=wording,
                max_rows=self.max_rows,
                stop=NEWLINE_STOP,
            )
            for i, (sample,) in zip(indices, samples, strict=True):
                text = sample.text.strip()
                progress = read_progress(items[i][1])
                state = "" if progress is None or progress.state is None else format_number(progress.state)
                out[i] = Reposed(text, state, None) if text else None
        return out

    def claimed(self, question: str, steps: tuple[str, ...]) -> Reposed | None:
        """What the steps claim, with no question written: a stated answer, or the last result."""
        progress = read_progress(steps)
        if progress is None:
            return None
        if progress.answered is not None:
            return Reposed(None, progress.answered, 0)
        return None if progress.state is None else Reposed(None, format_number(progress.state), 0)
