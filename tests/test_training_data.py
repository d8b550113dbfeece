"""Training data read back from the run file (step-DPO pairs, PPO rollouts)."""

from __future__ import annotations

from pathlib import Path

from presrm.config import RunConfig
from presrm.model.loading import load_policy
from presrm.store.writer import RunStore
from presrm.train.data import dpo_pairs_from_store, ppo_rollouts_from_store

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"


def _node(
    iteration: int, tree: int, node: int, parent: int | None, depth: int, text: str, **flags: bool
) -> dict:
    return {
        "iteration": iteration,
        "phase": "train",
        "problem_id": "p1",
        "tree_id": tree,
        "node_id": node,
        "parent_id": parent,
        "depth": depth,
        "expansion": depth,
        "text": text,
        "n_tokens": 5,
        "self_score": 1.0 if flags.get("chosen") else 0.0,
        "soft_score": None,
        "chosen": flags.get("chosen", False),
        "rejected": flags.get("rejected", False),
        "rolled_back": False,
        "is_final": flags.get("final", False),
        "correct": True if flags.get("final") else None,
        "step_check": flags.get("ok"),
    }


def test_a_problem_sampled_in_two_iterations_gives_its_path_once(tmp_path: Path) -> None:
    """Iteration 2 draws the same problem again: iteration 1's data must not change (it used to
    repeat every step, because the path joined both ``problems`` rows)."""
    store = RunStore.create(tmp_path / "run.duckdb", RunConfig(model="tiny"))
    store.append_rows(
        "problems",
        [
            {"problem_id": "p1", "split": "train", "iteration": it, "question": QUESTION, "answer": "7"}
            for it in (1, 2)
        ],
    )
    store.append_rows(
        "nodes",
        [
            _node(1, 0, 0, None, 1, "Step 1: 3 + 4 = 7", chosen=True, ok=True),
            _node(1, 0, 1, None, 1, "Step 1: 3 + 4 = 8", rejected=True, ok=False),
            _node(1, 0, 2, 0, 2, "Step 2: The answer is \\boxed{7}", chosen=True, final=True, ok=True),
            _node(1, 0, 3, 0, 2, "Step 2: The answer is \\boxed{12}", rejected=True, final=True, ok=True),
            _node(2, 1, 4, None, 1, "Step 1: 3 + 4 = 7", chosen=True),
        ],
    )
    store.flush()
    policy = load_policy("tiny")

    rollouts = ppo_rollouts_from_store(store.path, policy, 1, reward="outcome")
    assert len(rollouts) == 1 and len(rollouts[0].step_token_ids) == 2
    assert rollouts[0].step_rewards == [None, 1.0]
    pairs = dpo_pairs_from_store(store.path, policy, 1)
    assert [(p.chosen.strip(), p.rejected.strip()) for p in pairs] == [
        ("3 + 4 = 7", "3 + 4 = 8"),
        ("The answer is \\boxed{7}", "The answer is \\boxed{12}"),
    ]
    assert QUESTION in pairs[1].prompt and pairs[1].prompt.count("3 + 4 = 7") == 1
    # The oracle ablation keeps the pairs the step checker agrees with: the second pair's
    # rejected step passes the checker too, so only the first remains.
    oracle = dpo_pairs_from_store(store.path, policy, 1, checker_agreed_only=True)
    assert [(p.chosen.strip(), p.rejected.strip()) for p in oracle] == [("3 + 4 = 7", "3 + 4 = 8")]


def test_unjudged_steps_carry_no_reward_and_do_not_shift_normalisation(tmp_path: Path) -> None:
    """A step whose candidates were all the same was never judged (self_score NULL): its reward is
    None (it used to be a placeholder 0.5, which batch normalisation turned into a penalty), and the
    judged steps' normalised rewards are what they would be without it."""
    from test_ppo import tiny_llama, tiny_tokenizer

    from presrm.train.data import step_rewards
    from presrm.train.ppo import StepPPOTrainer

    assert step_rewards([None, 0.8], True, True, "process") == [None, 0.8]
    assert step_rewards([0.3, None], True, True, "both") == [0.3, 1.0]
    store = RunStore.create(tmp_path / "run.duckdb", RunConfig(model="tiny"))
    store.append_rows(
        "problems",
        [{"problem_id": "p1", "split": "train", "iteration": 1, "question": QUESTION, "answer": "7"}],
    )
    unjudged = {**_node(1, 0, 0, None, 1, "Step 1: 3 + 4 = 7", chosen=True, ok=True), "self_score": None}
    final = _node(1, 0, 1, 0, 2, "Step 2: The answer is \\boxed{7}", chosen=True, final=True, ok=True)
    store.append_rows("nodes", [unjudged, {**final, "self_score": 0.75}])
    store.flush()
    rollouts = ppo_rollouts_from_store(store.path, load_policy("tiny"), 1, reward="process")
    assert rollouts[0].step_rewards == [None, 0.75]

    trainer = StepPPOTrainer(tiny_llama(), tiny_tokenizer())
    with_unjudged = trainer._normalized_rewards([[None, 0.75], [0.25, None], [0.5]])
    without = trainer._normalized_rewards([[0.75], [0.25], [0.5]])
    assert [with_unjudged[0][1], with_unjudged[1][0], with_unjudged[2][0]] == [r[0] for r in without]
    assert with_unjudged[0][0] == with_unjudged[1][1] == 0.0
    assert trainer._normalized_rewards([[None], [None, None]]) == [[0.0], [0.0, 0.0]]  # nothing judged
