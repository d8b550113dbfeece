"""The paraphrase judge: arith question rewrites, the vote, the search with votes as candidates,
and a loop that stores its judgments under their own mode."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from presrm.config import JudgeConfig, load_config
from presrm.errors import TaskError
from presrm.model.generation import generate_steps
from presrm.model.policy import Policy
from presrm.model.scoring import sequence_logprobs
from presrm.run.loop import Loop
from presrm.search.judge import PairRequest, PointRequest
from presrm.search.judges import make_judge
from presrm.search.paraphrase import ParaphraseJudge, vote_shares
from presrm.search.tree import LocalIds, SearchSettings
from presrm.search.tree_search import search
from presrm.steps import parse_step, render_prefix, step_header
from presrm.store.reader import query_rows
from presrm.store.writer import RunStore
from presrm.tasks import load_task
from presrm.tasks.arith_rewrite import parse_question
from presrm.tasks.base import Task
from presrm.tasks.free import FreeTask


def _numbers(text: str) -> list[str]:
    return re.findall(r"\d+", text)


@pytest.mark.parametrize(
    "options", [{}, {"n_ops": 3, "ops": "+-*"}, {"n_ops": 4, "ops": "-", "max_operand": 30}]
)
def test_rewrites_keep_numbers_and_operations_and_change_the_words(options: dict[str, object]) -> None:
    task = load_task("arith", options)
    for problem in task.sample(60, "train", seed=4):
        rewrites = task.rewrite_question(problem.question, 4, seed=0)
        assert len(rewrites) == 4 and len(set(rewrites)) == 4 and problem.question not in rewrites
        parsed = parse_question(problem.question)
        assert parsed == (problem.meta["start"], [tuple(op) for op in problem.meta["ops"]])
        for text in rewrites:
            assert _numbers(text) == _numbers(problem.question)
            assert parse_question(text) == parsed
        assert task.rewrite_question(problem.question, 4, seed=0) == rewrites  # deterministic
        assert task.rewrite_question(problem.question, 4, seed=1) != rewrites


def test_questions_the_task_did_not_write_have_no_rewrites(arith: Task) -> None:
    assert arith.rewrite_question("What is 2 + 3?", 4, seed=0) == []
    with pytest.raises(TaskError, match="cannot rewrite its questions"):
        FreeTask().rewrite_question("What is 2 + 3?", 4, seed=0)


def test_vote_shares_compare_step_contents() -> None:
    texts = ["Step 1: 3 + 4 = 7", "Step 1:  3 + 4 = 7", "Step 1: 3 + 4 = 8", "Step 1: 9 - 1 = 8"]
    shares = vote_shares(texts, 3)
    assert shares == {texts[0]: 2 / 3, texts[1]: 2 / 3, texts[2]: 1 / 3, texts[3]: 0.0}


def test_votes_are_the_greedy_steps_under_each_wording(tiny: Policy, arith: Task) -> None:
    judge = ParaphraseJudge(tiny, arith, paraphrases=3, seed=0, max_step_tokens=8)
    problem = arith.sample(1, "eval", seed=0)[0]
    previous = ("Step 1: 1 + 2 = 3",)
    (votes,) = judge.votes([(problem.question, previous)])
    variants = judge.variants(problem.question)
    assert len(votes) == len(variants) == 4 and variants[0] == problem.question
    for variant, vote in zip(variants, votes, strict=True):
        prefix = render_prefix(tiny.solution_prompt(variant), list(previous)) + step_header(2)
        (greedy,) = generate_steps(tiny, [prefix], 1, temperature=0.0, max_new_tokens=8, seed=0)
        assert vote.text == greedy[0].text
    # The judge's answers follow the vote counts.
    written = [parse_step(v.text, 2, truncated=v.finish == "length").text for v in votes]
    other = "Step 2: 123 + 456 = 579"
    assert other not in written
    (pair,) = judge.pairwise([PairRequest(problem.question, previous, written[0], other)])
    assert pair.verdict == "A" and pair.p_b == 0.0 and pair.p_a == written.count(written[0]) / 4
    point_a, point_b = judge.pointwise(
        [
            PointRequest(problem.question, previous, written[0]),
            PointRequest(problem.question, previous, other),
        ]
    )
    assert point_a.p_a == pair.p_a and point_b.p_a == 0.0 and point_b.verdict == "No"


def test_wording_probs_average_the_step_probability_over_the_wordings(tiny: Policy, arith: Task) -> None:
    judge = ParaphraseJudge(tiny, arith, paraphrases=3, seed=0, max_step_tokens=8, batch_size=3)
    problem = arith.sample(1, "eval", seed=1)[0]
    previous = ("Step 1: 1 + 2 = 3",)
    candidates = ["Step 2: 3 + 4 = 7", "Step 2: 3 + 4 = 8", "Step 2: 3 + 4 = 7", "Step 2: The answer is 3."]
    (probs,) = judge.wording_probs([(problem.question, previous, candidates)])
    assert list(probs) == [candidates[0], candidates[1], candidates[3]]  # one entry per distinct step
    variants = judge.variants(problem.question)
    for text, prob in probs.items():
        # Scored one wording at a time, on the whole sequence: the same number.
        each = [
            math.exp(
                sequence_logprobs(
                    tiny,
                    [render_prefix(tiny.solution_prompt(v), list(previous))],
                    [text + "\n"],
                    share_prefix=False,
                )[0]
            )
            for v in variants
        ]
        # Compared as logs: the random tiny model gives these steps probabilities far below 1e-12.
        assert 0.0 < prob < 1.0
        assert math.log(prob) == pytest.approx(math.log(sum(each) / len(each)), abs=1e-4)
    assert len(set(probs.values())) == 3  # the tiny model does not score them alike
    with pytest.raises(ValueError, match="select_by"):
        ParaphraseJudge(tiny, arith, paraphrases=3, seed=0, max_step_tokens=8, select_by="likelihood")


def test_search_takes_the_votes_as_candidates_and_keeps_the_greedy_step_on_ties(
    tiny: Policy, arith: Task
) -> None:
    problems = arith.sample(4, "eval", seed=2)
    judge = make_judge(tiny, JudgeConfig(mode="paraphrase", paraphrases=3), arith, max_step_tokens=8)
    settings = SearchSettings(
        width=6, max_steps=3, max_step_tokens=8, greedy_candidate=True, switch_margin=0.0, temperature=1.0
    )
    trees = search(tiny, judge, arith, problems, settings, LocalIds())
    greedy = search(
        tiny,
        None,
        arith,
        problems,
        SearchSettings(width=1, max_steps=1, max_step_tokens=8, temperature=0.0),
        LocalIds(),
    )
    for tree, plain in zip(trees, greedy, strict=True):
        first_round = [n for n in tree.nodes if n.expansion == 0]
        assert len(first_round) == 6  # 4 votes (question + 3 rewrites) + 2 samples
        assert first_round[0].text == plain.nodes[0].text
        assert {j.mode for j in tree.judgments} == {"paraphrase"}
        (probs,) = judge.verdicts.wording_probs([(tree.problem.question, (), [n.text for n in first_round])])
        for node in tree.nodes:
            assert node.score_kind == "vote_share" and node.self_score is not None
        for node in first_round:  # graded: the wording-averaged probability (compared as logs)
            assert node.soft_score is not None and node.soft_score > 0.0
            assert math.log(node.soft_score) == pytest.approx(math.log(probs[node.text]), abs=1e-4)
        chosen = next(n for n in first_round if n.chosen)
        best = max(n.self_score or 0.0 for n in first_round)
        assert chosen.self_score == best
        if first_round[0].self_score == best:
            assert chosen is first_round[0]


def test_selecting_by_wording_probability_keeps_greedy_unless_a_step_is_likelier(
    tiny: Policy, arith: Task
) -> None:
    problems = arith.sample(6, "eval", seed=3)
    cfg = JudgeConfig(mode="paraphrase", paraphrases=3, paraphrase_select="probability")
    judge = make_judge(tiny, cfg, arith, max_step_tokens=8)
    settings = SearchSettings(
        width=6, max_steps=2, max_step_tokens=8, greedy_candidate=True, switch_margin=0.0, temperature=1.0
    )
    trees = search(tiny, judge, arith, problems, settings, LocalIds())
    switched = 0
    for tree in trees:
        first_round = [n for n in tree.nodes if n.expansion == 0]
        (probs,) = judge.verdicts.wording_probs([(tree.problem.question, (), [n.text for n in first_round])])
        chosen = next(n for n in first_round if n.chosen)
        for node in first_round:
            assert node.score_kind == "wording_prob"
            assert node.self_score == node.soft_score
            assert node.soft_score is not None
            assert math.log(node.soft_score) == pytest.approx(math.log(probs[node.text]), abs=1e-4)
        greedy = first_round[0]
        if max(probs.values()) > probs[greedy.text]:
            assert chosen.text == max(probs, key=probs.__getitem__)
            switched += chosen.text != greedy.text
        else:
            assert chosen is greedy
    assert switched > 0  # the rule is exercised: some greedy step lost to a likelier one


def test_a_loop_with_the_paraphrase_judge_stores_its_votes(tmp_path: Path) -> None:
    cfg = load_config(
        None,
        [
            "model=tiny",
            "problems=2",
            "eval_problems=2",
            "width=5",
            "max_steps=2",
            "iterations=1",
            "warmup.enabled=false",
            "warmup.eft_test_examples=4",
            "sampling.max_step_tokens=6",
            "sampling.greedy_candidate=true",
            "judge.mode=paraphrase",
            "judge.paraphrases=3",
            "judge.switch_margin=0.0",
            "train.finetune=lora",
            f"out={str(tmp_path / 'run.duckdb')!r}",
        ],
    )
    store = RunStore.create(cfg.out, cfg)
    Loop(store).run()
    modes = query_rows(cfg.out, "SELECT DISTINCT mode FROM judgments")
    assert modes == [("paraphrase",)]
    kinds = query_rows(cfg.out, "SELECT DISTINCT score_kind FROM nodes WHERE self_score IS NOT NULL")
    assert kinds == [("vote_share",)]
    metrics = {r[0] for r in query_rows(cfg.out, "SELECT metric FROM eval_metrics")}
    # held-out pairs decided by the vote carry the mode's own name: judge_accuracy is the LLM judge's
    assert {"accuracy_search", "paraphrase_accuracy"} <= metrics and "judge_accuracy" not in metrics
