"""Training example types shared by data builders and trainers."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class SFTExample:
    """One supervised example: loss on ``completion`` only.

    ``prompt`` is the fully formatted model input (already wrapped by
    ``Policy.solution_prompt`` / ``complete_prompt``); ``eos``: the trainer appends the
    tokenizer's EOS token after the completion.
    """

    prompt: str
    completion: str
    eos: bool = True


@dataclass(frozen=True)
class JudgePair:
    """Two candidate next steps for one partial solution, and the right verdict.

    Steps are full step texts (``"Step 2: 19 - 5 = 14"``), as the search shows them to the
    judge. ``check``: what the judge should write before its verdict (for arith, the correct
    recomputation, e.g. ``"19 - 5 = 14"``), or None.
    """

    problem_id: str
    question: str
    previous_steps: tuple[str, ...]
    step_a: str
    step_b: str
    verdict: str
    check: str | None = None

    def swapped(self) -> JudgePair:
        """The same pair shown in the other order (the verdict follows the better step)."""
        other = "B" if self.verdict == "A" else "A"
        return replace(self, step_a=self.step_b, step_b=self.step_a, verdict=other)


@dataclass(frozen=True)
class StepPair:
    """A step preference pair.

    ``prompt``: fully formatted (solution prompt + accepted steps + ``"Step k:"``).
    ``chosen`` / ``rejected``: the text after the header, as generated (``" 19 - 5 = 14"``);
    the trainer adds the ``"\\n"`` that ended the step if it is missing.
    ``is_final``: the chosen step ends the solution (EOS follows its newline);
    ``rejected_final``: the same for the rejected step (None: same as ``is_final``).
    """

    prompt: str
    chosen: str
    rejected: str
    is_final: bool
    rejected_final: bool | None = None


@dataclass
class StepRollout:
    """One solved (or partly solved) problem: the prompt and the response as its steps."""

    prompt_ids: list[int]
    step_token_ids: list[list[int]]  # the response, step by step, in order
    # One per step; None = this step carries no reward (outcome rewards: every step but the last).
    # Not the same as 0.0: batch normalisation would turn a placeholder 0 into a penalty.
    step_rewards: list[float | None]

    def __post_init__(self) -> None:
        if not self.prompt_ids:
            raise ValueError(
                "a rollout needs a non-empty prompt (the first response token is predicted from it)"
            )
        if not self.step_token_ids:
            raise ValueError("a rollout needs at least one step")
        if len(self.step_token_ids) != len(self.step_rewards):
            raise ValueError(
                f"{len(self.step_token_ids)} steps but {len(self.step_rewards)} step rewards in a rollout"
            )
        if any(len(step) == 0 for step in self.step_token_ids):
            raise ValueError("a step has no tokens, so it has no last token to carry its reward")

    @property
    def response_ids(self) -> list[int]:
        return [tok for step in self.step_token_ids for tok in step]

    @property
    def step_end_positions(self) -> list[int]:
        """0-based index of each step's last token within the response."""
        ends, pos = [], -1
        for step in self.step_token_ids:
            pos += len(step)
            ends.append(pos)
        return ends
