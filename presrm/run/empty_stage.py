"""A training stage without training data is an error that names the cause (unless skipped).

Training on nothing would save the unchanged model as the next iteration and let the run go
on as if it had learnt something. So, unless ``train.empty_stage = "skip"``, the stage stops
the run with what the iteration's search did: how many judge verdicts were unparseable, how
many expansions had one distinct candidate, how many accepted steps were rolled back.
"""

from __future__ import annotations

from pathlib import Path

from presrm.config import RunConfig
from presrm.errors import PresrmError
from presrm.run.distributed import Dist
from presrm.search.judges import mode_class
from presrm.store.training_rows import search_counts

SKIP_HINT = "set train.empty_stage = 'skip' to go on without training"


class EmptyStageError(PresrmError):
    """A training stage has no examples (the message says why)."""


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "0 %"


def search_causes(counts: dict[str, int], cfg: RunConfig) -> list[str]:
    """Why an iteration's search left nothing to train on (from presrm.store.training_rows.search_counts)."""
    if counts["trees"] == 0:
        return ["the search stored no training trees"]
    causes = []
    if counts["judgments"]:
        # What a judgment without a verdict means in the run's mode (auto's two modes agree).
        what = mode_class(cfg.judge.mode, chat=False).no_verdict
        causes.append(
            f"{_pct(counts['unparseable'], counts['judgments'])} of {what}"
            f" ({counts['unparseable']} of {counts['judgments']})"
        )
    else:
        causes.append("no judge calls")
    if counts.get("order_disagreements"):
        # Verdicts that parse but follow the position: the consistency rule ties every such pair.
        causes.append(
            f"{counts['order_disagreements']} of {counts['pairs']} pairs named different steps in the two"
            " orders (position bias; judge.pair_rule = 'debiased' decides them by P(win) over both orders)"
        )
    causes.append(
        f"{counts['single_candidate_expansions']} of {counts['expansions']} expansions had one distinct"
        " candidate (nothing to compare)"
    )
    causes.append(f"{counts['rolled_back']} accepted steps rolled back (all candidates tied)")
    if cfg.algo == "step-dpo" and cfg.train.dpo.pairs == "checker" and counts["rejected_steps"]:
        causes.append(
            f"train.dpo.pairs = 'checker' kept none of the {counts['rejected_steps']} self-judged pairs"
        )
    return causes


def empty_stage_message(stage: str, iteration: int, cfg: RunConfig, counts: dict[str, int] | None) -> str:
    """The one-line error of an empty ``stage`` (warmup | step-dpo | ppo | rft) of M<iteration>."""
    if stage == "warmup":
        w = cfg.warmup
        what = (
            f"the warm-up has 0 examples (warmup.ift_examples = {w.ift_examples},"
            f" warmup.eft_examples = {w.eft_examples}, warmup.eft_jsonl = {w.eft_jsonl!r})"
        )
        return f"M{iteration} {what}; {SKIP_HINT}"
    made = {
        "step-dpo": "0 preference pairs",
        "rft": "0 self-verified solutions (no chosen path ending in an answer whose every step scored at"
        f" least train.rft.min_score = {cfg.train.rft.min_score})",
    }.get(stage, "0 PPO rollouts (no accepted path)")
    causes = "; ".join(search_causes(counts, cfg)) if counts is not None else "see rank 0's run file"
    return f"M{iteration} {stage}: search made {made}: {causes}; {SKIP_HINT}"


def check_not_empty(
    stage: str,
    iteration: int,
    n: int,
    cfg: RunConfig,
    run_file: Path,
    dist: Dist,
) -> bool:
    """True when the stage has data; False when it is empty and the config says skip; raises
    :class:`EmptyStageError` otherwise (every rank: the data, and so ``n``, is the same on all)."""
    if n > 0:
        return True
    if cfg.train.empty_stage == "skip":
        return False
    counts = None if stage == "warmup" else dist.from_main(lambda: search_counts(run_file, iteration))
    raise EmptyStageError(empty_stage_message(stage, iteration, cfg, counts))
