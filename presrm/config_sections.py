"""The sections of a run's configuration (judge, sampling, trainers, warm-up, curriculum): typed
and validated; presrm.config assembles them into the run config and loads it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Section(BaseModel):
    # Unknown keys are errors: a typo must never be silently ignored.
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SamplingConfig(_Section):
    """How candidate next steps are sampled (the paper: temperature 0.5, top-p 0.95)."""

    temperature: float = Field(0.5, ge=0.0, le=5.0, description="sampling temperature (0 = greedy)")
    top_p: float = Field(0.95, gt=0.0, le=1.0, description="nucleus sampling mass")
    max_step_tokens: int = Field(48, ge=1, description="token limit of one step")
    greedy_candidate: bool = Field(False, description="the first candidate of every step is the greedy one")
    max_rows: int = Field(
        64, ge=1, description="candidate rows decoded together (the generation batch; bounds the KV cache)"
    )


class JudgeConfig(_Section):
    """How the policy judges its own candidate steps."""

    mode: Literal["auto", "pairwise", "likelihood", "pointwise", "paraphrase", "check", "repose"] = Field(
        "auto",
        description="pairwise [[A]]/[[B]] prompt | likelihood (the policy's own log-prob of each step)"
        " | pointwise P(Yes) | paraphrase (share of question rewrites under which the policy writes"
        " the step; needs a task that rewrites its questions) | check (share of the policy's written"
        " re-computations of the step's equations, e.g. 19 - 7 = for 12 + 7 = 19, that agree with"
        " it) | repose (the problem re-posed as a fresh, shorter question from the step's result, solved"
        " by the policy, must come out where it does from before the step; needs a task that re-poses"
        " its questions); auto = pairwise for chat models, likelihood for raw LMs",
    )
    paraphrases: int = Field(
        4,
        ge=1,
        le=32,
        description="paraphrase judge: rewrites of the question whose greedy steps vote with the"
        " question's own; they are the first candidates of every step",
    )
    paraphrase_select: Literal["votes", "probability"] = Field(
        "votes",
        description="paraphrase judge: pick the step by its share of the votes, or by its probability"
        " under the policy averaged over the question and its rewrites (the graded score every"
        " candidate gets as its soft_score either way)",
    )
    repose_span: Literal["rest", "step"] = Field(
        "rest",
        description="repose judge: what a re-posed question holds: rest = every operation left (before"
        " the step: its own and all later ones; after it: the later ones) | step = the step's own"
        " operation only, as a one-operation question whose answer must equal the step's result",
    )
    repose_inverse: bool = Field(
        False,
        description="repose judge, step span: also undo each step (its operation inverted, from the"
        " result it claims, as a fresh one-operation question whose answer must be the value before"
        " the step); other arithmetic facts than the step's own, so a slip repeated by the forward"
        " view need not repeat here; each wording is one more comparison in the share (arith only)",
    )
    repose_propose: bool = Field(
        True,
        description="repose judge: the first candidates of every step are the policy's greedy step and"
        " the step it writes for the re-posed rest (the first step of its solve, or the answer when"
        " nothing is left), then samples; a step the model gets wrong in the long question can be"
        " replaced by the one it writes in the short one, if the check accepts it",
    )
    repose_wordings: int = Field(
        1,
        ge=1,
        le=16,
        description="repose judge: wordings of each re-posed question; a step's score is the share of"
        " (before, after) wording pairs whose answers agree",
    )
    verdict: Literal["text", "probs"] = Field(
        "text", description="read the verdict from generated text or from P(A) vs P(B)"
    )
    check: bool = Field(True, description="let the judge write a short check before its verdict")
    max_judge_tokens: int = Field(48, ge=1, description="token limit of a judge's written check + verdict")
    switch_margin: float | None = Field(
        None,
        ge=0.0,
        description="with sampling.greedy_candidate: keep the greedy step unless another scores more than"
        " this above it; unset: the best score wins",
    )
    batch_size: int = Field(32, ge=1, description="judge prompts generated / scored together")
    pair_rule: Literal["consistent", "debiased"] = Field(
        "consistent",
        description="a pair judged in both orders: consistent = a win only when both orders name the same"
        " step, else a tie (the paper's) | debiased = a pair whose orders disagree goes to the step whose"
        " P(win), averaged over both orders, is higher (cancels a judge's position bias)",
    )

    @model_validator(mode="after")
    def _inverse_needs_the_step_span(self) -> JudgeConfig:
        # Checked with the config, so a run does not stop at its first search.
        if self.repose_inverse and self.repose_span != "step":
            raise ValueError("judge.repose_inverse undoes one step: it needs judge.repose_span = 'step'")
        return self


class SFTConfig(_Section):
    """Supervised fine-tuning (the warm-up's trainer): loss on completions only."""

    lr: float = Field(3e-5, gt=0.0, description="learning rate")
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1, description="sequences per update (per process)")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, ~30 % more compute"
    )


class StepDPOConfig(_Section):
    """Step-wise DPO (the paper's trainer): one preference pair per accepted step."""

    lr: float = Field(1e-5, gt=0.0, description="learning rate")
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1, description="pairs per update (per process)")
    beta: float = Field(0.1, gt=0.0, description="DPO beta")
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, ~30 % more compute"
    )
    sft_weight: float = Field(
        0.0, ge=0.0, description="weight of the chosen steps' NLL added to the loss (RPO); 0 = plain DPO"
    )
    pairs: Literal["self", "checker"] = Field(
        "self",
        description="self = the self-judged pairs; checker = only those the step checker agrees with (oracle)",
    )


class PPOConfig(_Section):
    """KL-regularized PPO with step-level rewards (reward at each step's last token, masked GAE)."""

    lr: float = Field(1e-5, gt=0.0, description="policy learning rate")
    value_lr: float | None = Field(1e-4, gt=0.0, description="value head learning rate (None = lr)")
    weight_decay: float = Field(0.0, ge=0.0)
    kl_coef: float = Field(0.05, ge=0.0, description="per-token KL penalty against the reference")
    kl_kind: Literal["k1", "k2", "k3", "abs"] = Field("k1", description="KL estimator")
    gamma: float = Field(1.0, ge=0.0, le=1.0)
    lam: float = Field(0.95, ge=0.0, le=1.0, description="GAE lambda")
    clip: float = Field(0.2, gt=0.0, description="policy ratio clip")
    vf_clip: float = Field(0.2, gt=0.0, description="value clip")
    vf_coef: float = Field(0.1, ge=0.0)
    ent_coef: float = Field(0.0, description="entropy bonus")
    ppo_epochs: int = Field(2, ge=1, description="passes over the rollouts per training stage")
    minibatch_size: int = Field(8, ge=1, description="rollouts per update (per process)")
    whiten_advantages: bool = True
    reward_norm: Literal["batch", "none"] = Field(
        "batch", description="normalise step rewards over the batch"
    )
    max_grad_norm: float = Field(1.0, gt=0.0)
    logprob_chunk: int = Field(
        512,
        ge=0,
        description="response tokens whose full-vocabulary logits exist at once (LM head applied per chunk,"
        " float32 inside it); 0 = the whole minibatch's logits at once",
    )
    gradient_checkpointing: bool = Field(
        False, description="recompute activations in the backward pass: less memory, ~30 % more compute"
    )


class RFTConfig(_Section):
    """Rejection-sampling fine-tuning on the search's self-verified solutions, with replay."""

    lr: float = Field(1e-4, gt=0.0, description="peak learning rate (warm-up, then cosine decay)")
    updates: int = Field(300, ge=1, description="optimizer updates per training stage")
    batch_size: int = Field(32, ge=1, description="sequences per update")
    min_score: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="a chosen step counts as accepted when its self_score is at least this; a path is"
        " kept when every step is accepted and it ends in a final answer",
    )
    self_share: float = Field(
        0.25,
        gt=0.0,
        le=1.0,
        description="share of self-verified solutions in a stage's data, the rest replay (1 = no replay)",
    )
    replay: Literal["base", "none"] = Field(
        "base",
        description="base = the default model's own gold solutions of the easier levels (model ="
        " 'default' only); none = self-verified solutions alone",
    )
    balance_below: bool = Field(
        True,
        description="replay = 'base': add as many of the base's own solutions of the level just below the first"
        " level taught as the stage has self-verified solutions (a level taught alone makes the model"
        " write its number of steps on the level below too)",
    )
    balance_checks: bool = Field(
        False,
        description="replay = 'base': add as many of the base's own 1-operation solutions as the stage has"
        " self-verified solutions (the questions the step-span re-posing judge asks: a model trained on"
        " longer solutions answers them worse, and its checks then reject right steps)",
    )
    keep_earlier: bool = Field(
        True,
        description="train on the verified solutions of every earlier iteration too, so a level learnt"
        " before is kept while the next is taught",
    )
    control: bool = Field(
        False,
        description="the control arm: the same updates on the replay alone, no self-verified solution"
        " (the search still runs and is stored, so its verified share is still measured)",
    )
    control_replay: Literal["all", "matched"] = Field(
        "all",
        description="control = true: all = the whole replay pool; matched = the self-trained arm's own"
        " data with its verified solutions left out (as much replay as self_share gives them, and the"
        " balance_below / balance_checks solutions): each gold level as often as in the self-trained arm",
    )


class TrainConfig(_Section):
    """The self-rewarding iterations' training: what is trained, from which reward, by which trainer."""

    finetune: Literal["auto", "lora", "full"] = Field(
        "auto", description="LoRA, full fine-tuning, or auto by size"
    )
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    reward: Literal["process", "outcome", "both"] = Field(
        "process", description="PPO: process = self-judged step scores; outcome = ground-truth final answers"
    )
    empty_stage: Literal["error", "skip"] = Field(
        "error",
        description="a training stage (warm-up included) without examples: error = stop the run naming"
        " the cause; skip = keep the model unchanged and go on",
    )
    dpo: StepDPOConfig = Field(default_factory=StepDPOConfig)
    ppo: PPOConfig = Field(default_factory=PPOConfig)
    rft: RFTConfig = Field(default_factory=RFTConfig)


class WarmupConfig(SFTConfig):
    """The IFT + EFT supervised warm-up that turns M0 into M1 (its trainer settings: SFTConfig's)."""

    enabled: bool = True
    ift_examples: int = Field(400, ge=0, description="step-formatted solutions")
    eft_examples: int = Field(400, ge=0, description="judge examples (pairs of candidate steps)")
    eft_test_examples: int = Field(100, ge=0, description="held-out judge pairs (the paper's Table 3)")
    eft_jsonl: str | None = Field(None, description="extra EFT examples from a JSONL file")
    eft_source: Literal["reference", "rollouts", "sampled"] = Field(
        "reference",
        description="reference = reference steps against corruptions; rollouts = candidate steps of"
        " sampled solutions labeled by rollouts to the gold answer (Math-Shepherd; also the held-out"
        " judge pairs of a task without a step checker); sampled = candidate steps of sampled"
        " solutions labeled by the task's step checker (the policy's own errors, no rollouts)",
    )
    rollouts: int = Field(8, ge=1, description="rollouts per labeled step (eft_source = rollouts)")
    rollout_label: Literal["hard", "soft"] = Field(
        "hard",
        description="hard = good if any rollout reaches the gold answer, bad if none does;"
        " soft = rollout success rates at least 0.5 apart",
    )


class CurriculumConfig(_Section):
    """Levels of one task option (e.g. n_ops): what the iterations train on, and what is evaluated."""

    option: str = Field("n_ops", description="the task option that sets a level")
    levels: list[int] = Field(
        default_factory=list,
        description="training levels in order, the first where the iterations start; empty = train on"
        " task_options as given",
    )
    advance_at: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="move to the next level after an iteration whose self-verified solutions (algo ="
        " 'rft') reached this share of its training problems",
    )
    eval_levels: list[int] = Field(
        default_factory=list,
        description="held-out levels evaluated greedily each iteration besides task_options' own (e.g."
        " the level below as a regression check and the levels above); evals.mode = 'greedy:OPTION=LEVEL'",
    )
