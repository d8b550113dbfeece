"""The trace store's schema, version 3: the public SQL interface of a run file.

Version 3 (from 2): ``judgments.mode`` records the mode actually used (the likelihood
comparison is ``likelihood``, no longer ``pairwise``), and ``judgments.verdict_source`` /
``probs_at`` say where a verdict and its probabilities came from. presrm.store.migrate
upgrades version 2 files in place when they are opened.

Every table carries ``run_id`` so that several run files can be attached and
unioned. Comments on each column are stored in the database (``COMMENT ON``) and
printed by ``presrm schema``; the README quotes them.
"""

from __future__ import annotations

SCHEMA_VERSION = 3
MAGIC = "presrm-trace-store"

# (table, [(column, type, comment)], table comment)
TABLES: list[tuple[str, list[tuple[str, str, str]], str]] = [
    (
        "presrm_meta",
        [("key", "VARCHAR PRIMARY KEY", "metadata key"), ("value", "VARCHAR", "metadata value")],
        "file identity: magic string and schema version",
    ),
    (
        "runs",
        [
            ("run_id", "VARCHAR PRIMARY KEY", "unique id of the run"),
            ("created_at", "TIMESTAMP", "when the run was created (UTC)"),
            ("presrm_version", "VARCHAR", "presrm version that created the run"),
            ("config_json", "VARCHAR", "the full validated run configuration as JSON (used by --resume)"),
            ("model", "VARCHAR", "policy model spec (config.model)"),
            ("task", "VARCHAR", "task spec (config.task)"),
            ("algo", "VARCHAR", "trainer of the self-rewarding iterations: ppo | step-dpo"),
            ("seed", "BIGINT", "run seed"),
        ],
        "one row per run",
    ),
    (
        "iterations",
        [
            ("run_id", "VARCHAR", "run"),
            ("iteration", "INTEGER", "0 = M0 (base), 1 = M1 (after warm-up), k = M_k"),
            ("model_name", "VARCHAR", "M0, M1, M2, ..."),
            ("checkpoint", "VARCHAR", "directory of this iteration's model checkpoint, NULL for M0"),
            ("started_at", "TIMESTAMP", "start of the iteration"),
            ("finished_at", "TIMESTAMP", "end of its last stage, NULL while running"),
        ],
        "one row per model of the M0 -> M1 -> M2 ... chain",
    ),
    (
        "stages",
        [
            ("run_id", "VARCHAR", "run"),
            ("iteration", "INTEGER", "iteration the stage belongs to"),
            ("stage", "VARCHAR", "warmup | search | train | eval"),
            ("finished_at", "TIMESTAMP", "when the stage committed"),
            ("wall_s", "DOUBLE", "wall-clock seconds the stage took"),
            ("detail", "VARCHAR", "JSON with stage counters (rows written, tokens, ...)"),
        ],
        "finished stages; a stage's rows and its stages row commit in one transaction (resume reads this)",
    ),
    (
        "problems",
        [
            ("run_id", "VARCHAR", "run"),
            ("problem_id", "VARCHAR", "task-unique id of the problem"),
            ("split", "VARCHAR", "train | eval"),
            ("iteration", "INTEGER", "iteration that first used the problem"),
            ("question", "VARCHAR", "problem text"),
            ("answer", "VARCHAR", "reference final answer (ground truth)"),
            ("reference_steps", "VARCHAR[]", "reference step-by-step solution, when the task has one"),
            ("source", "VARCHAR", "task spec the problem came from"),
        ],
        "problems used by the run, with their ground truth",
    ),
    (
        "nodes",
        [
            ("run_id", "VARCHAR", "run"),
            ("iteration", "INTEGER", "iteration whose model generated the node"),
            ("phase", "VARCHAR", "train (self-rewarding search) | eval (test-time search) | greedy"),
            ("problem_id", "VARCHAR", "problem the tree solves"),
            ("tree_id", "BIGINT", "one search tree = one (iteration, phase, problem) attempt"),
            ("node_id", "BIGINT", "unique within the run"),
            ("parent_id", "BIGINT", "the accepted step this candidate continues; NULL for first steps"),
            ("depth", "INTEGER", "step number: 1 for first steps"),
            ("expansion", "INTEGER", "expansion round within the tree (counts rollbacks; <= max_steps)"),
            ("text", "VARCHAR", "the full step text, 'Step k: ...' (model output, stored verbatim)"),
            ("n_tokens", "INTEGER", "generated tokens of the step"),
            ("logprob", "DOUBLE", "sum of the step tokens' log-probs under the generating model"),
            (
                "finish",
                "VARCHAR",
                "why generation stopped: newline (one-line steps) | boundary (multi-line steps: a blank"
                " line or the next step header) | eos | length",
            ),
            (
                "self_score",
                "DOUBLE",
                "the model's own judgment of the step, 0..1: win_rate (pairwise) = consistent wins against"
                " its siblings / (siblings - 1), a pair whose two orders disagree counting 0.5 to each;"
                " p_yes (pointwise) = P(Yes | 'is this step correct?'); vote_share (paraphrase) = share of"
                " question rewrites under which the policy writes the step; wording_prob (paraphrase,"
                " judge.paraphrase_select = probability) = the step's probability under the policy, averaged"
                " over the question and its rewrites; check_share (check) = share of"
                " the policy's written re-computations of the step's equations that agree with it (0.5: no"
                " equation); NULL when not judged",
            ),
            (
                "score_kind",
                "VARCHAR",
                "win_rate (pairwise: consistent wins / (siblings - 1), ties = 0.5) | p_yes (pointwise)"
                " | vote_share / wording_prob (paraphrase) | check_share (check)",
            ),
            (
                "soft_score",
                "DOUBLE",
                "graded self-score, 0..1: pairwise = the judge's probability that this step beats a sibling"
                " (P(A)/P(B) of its verdict token, renormalised over A and B, averaged over both orders"
                " and all distinct siblings; a call without probabilities counts 1/0, no verdict 0.5);"
                " pointwise = P(Yes); paraphrase = the step's probability under the policy, averaged over the"
                " question and its rewrites; NULL when not judged. The search selects by self_score; use this one"
                " for calibration and AUROC",
            ),
            ("chosen", "BOOLEAN", "the search continued from this step"),
            ("rejected", "BOOLEAN", "the worst-scored sibling, the 'rejected' side of the step pair"),
            ("rolled_back", "BOOLEAN", "chosen once, then dropped by a rollback (all its children tied)"),
            ("is_final", "BOOLEAN", "the step states a final answer"),
            ("final_answer", "VARCHAR", "extracted final answer, NULL when none"),
            ("parse_status", "VARCHAR", "ok | final | empty | runaway | no_answer (step-format parser)"),
            ("correct", "BOOLEAN", "final answer matches the ground truth; NULL for non-final steps"),
            ("step_check", "BOOLEAN", "the task's own step checker verdict; NULL when the task has none"),
        ],
        "every candidate step of every reasoning tree",
    ),
    (
        "judgments",
        [
            ("run_id", "VARCHAR", "run"),
            ("iteration", "INTEGER", "iteration whose model judged"),
            ("phase", "VARCHAR", "train | eval | eft_test (held-out judge pairs)"),
            ("judgment_id", "BIGINT", "unique within the run"),
            ("tree_id", "BIGINT", "tree of the judged nodes (NULL for eft_test)"),
            (
                "mode",
                "VARCHAR",
                "the judge mode actually used: pairwise (LLM-as-a-judge, the paper's [[A]]/[[B]] prompt)"
                " | pointwise (P(Yes)) | likelihood (the policy's own log-prob of each step: no judge"
                " prompt, no LLM-as-a-judge)",
            ),
            ("node_a", "BIGINT", "node shown as candidate A (pointwise: the judged node)"),
            ("node_b", "BIGINT", "node shown as candidate B (NULL for pointwise)"),
            ("order", "SMALLINT", "0 = first presentation of the pair, 1 = swapped order"),
            (
                "check_text",
                "VARCHAR",
                "the judge's written check before its verdict (model output, verbatim)",
            ),
            ("raw_output", "VARCHAR", "the judge's full generated text (model output, verbatim)"),
            (
                "verdict",
                "VARCHAR",
                "A | B (pairwise, likelihood), Yes | No (pointwise), NULL when unparseable",
            ),
            (
                "p_a",
                "DOUBLE",
                "P(A) of the verdict token (pointwise: P(Yes); likelihood: the step's log-prob"
                " renormalised over the pair), renormalised over the two",
            ),
            ("p_b", "DOUBLE", "P(B) of the verdict token (pointwise: P(No))"),
            ("winner", "BIGINT", "node id the verdict prefers, NULL when no verdict"),
            ("expected", "VARCHAR", "correct verdict when known (eft_test pairs / step checker), else NULL"),
            (
                "verdict_source",
                "VARCHAR",
                "what the stored verdict came from: text (the judge's written [[A]]/[[B]]) | probs"
                " (P(A) vs P(B); pointwise P(Yes) vs P(No)) | logprob (likelihood); NULL without a verdict",
            ),
            (
                "probs_at",
                "VARCHAR",
                "pairwise: where P(A)/P(B) were read: verdict (at the verdict the judge wrote) | appended"
                " (after '[[' appended to a text without a verdict); NULL for other modes",
            ),
        ],
        "every judge call",
    ),
    (
        "train_steps",
        [
            ("run_id", "VARCHAR", "run"),
            ("iteration", "INTEGER", "iteration being trained (the model it produces)"),
            ("stage", "VARCHAR", "warmup | ppo | step-dpo"),
            ("step", "INTEGER", "optimizer update number within the stage"),
            ("metric", "VARCHAR", "loss, kl, reward_mean, clipfrac, entropy, ..."),
            ("value", "DOUBLE", "metric value"),
        ],
        "training metrics, long format (one row per update and metric)",
    ),
    (
        "evals",
        [
            ("run_id", "VARCHAR", "run"),
            ("iteration", "INTEGER", "iteration evaluated"),
            ("mode", "VARCHAR", "greedy | search"),
            ("problem_id", "VARCHAR", "eval problem"),
            ("tree_id", "BIGINT", "tree of the attempt in nodes"),
            ("final_answer", "VARCHAR", "extracted final answer, NULL when none"),
            ("correct", "BOOLEAN", "final answer matches the ground truth"),
            ("n_steps", "INTEGER", "steps in the solution"),
            ("n_tokens", "INTEGER", "generated tokens in the solution"),
            ("min_score", "DOUBLE", "min soft_score (graded self-score) over the solution's judged steps"),
            ("mean_score", "DOUBLE", "mean soft_score over the solution's judged steps"),
            ("last_score", "DOUBLE", "soft_score of the last judged step"),
        ],
        "one row per evaluated problem and mode",
    ),
    (
        "eval_metrics",
        [
            ("run_id", "VARCHAR", "run"),
            ("iteration", "INTEGER", "iteration evaluated"),
            (
                "metric",
                "VARCHAR",
                "accuracy_greedy, accuracy_search, judge_accuracy, auroc_min, ece_min, ...",
            ),
            ("value", "DOUBLE", "metric value"),
        ],
        "per-iteration evaluation summary, long format",
    ),
    (
        "flags",
        [
            ("run_id", "VARCHAR", "run"),
            ("flag_id", "BIGINT", "unique within the run"),
            ("target", "VARCHAR", "judgment | node"),
            ("target_id", "BIGINT", "judgment_id or node_id"),
            ("who", "VARCHAR", "user who flagged"),
            ("created_at", "TIMESTAMP", "when"),
            ("note", "VARCHAR", "why (free text)"),
            (
                "original_verdict",
                "VARCHAR",
                "the judge's verdict (judgment) or chosen/rejected (node) at flag time",
            ),
            ("corrected_verdict", "VARCHAR", "what the judge should have said, when given"),
        ],
        "human flags: a judgment or step marked as a judge error",
    ),
]

VIEWS: list[tuple[str, str, str]] = [
    (
        "step_scores",
        "every step with its self-score next to the ground truth of its tree's final answer",
        """
        SELECT n.run_id, n.iteration, n.phase, n.problem_id, n.tree_id, n.node_id, n.parent_id, n.depth,
               n.text, n.self_score, n.score_kind, n.soft_score, n.chosen, n.step_check,
               t.solution_correct
        FROM nodes n
        LEFT JOIN (
            SELECT tree_id, bool_or(correct) FILTER (WHERE chosen AND is_final) AS solution_correct
            FROM nodes GROUP BY tree_id
        ) t USING (tree_id)
        """,
    ),
    (
        "chosen_paths",
        "the accepted solution of each tree: its steps in order, scores and final correctness",
        """
        SELECT run_id, iteration, phase, problem_id, tree_id,
               string_agg(text, chr(10) ORDER BY depth) AS solution,
               count(*) AS n_steps,
               sum(n_tokens) AS n_tokens,
               min(soft_score) AS min_score,
               avg(soft_score) AS mean_score,
               arg_max(soft_score, depth) AS last_score,
               bool_or(is_final) AS finished,
               bool_or(correct) FILTER (WHERE is_final) AS correct
        FROM nodes
        WHERE chosen AND NOT rolled_back
        GROUP BY ALL
        """,
    ),
    (
        "judge_pairs",
        "two-step judgments (every mode but pointwise) with both orders side by side: consistency and"
        " the agreed winner; mode says which judge (the likelihood comparison is consistent by design)",
        """
        SELECT f.run_id, f.iteration, f.phase, f.tree_id, f.node_a, f.node_b,
               f.judgment_id AS first_judgment, s.judgment_id AS swapped_judgment,
               f.winner AS first_winner, s.winner AS swapped_winner,
               coalesce(f.winner IS NOT NULL AND f.winner = s.winner, false) AS consistent,
               CASE WHEN f.winner = s.winner THEN f.winner END AS agreed_winner,
               f.expected, f.mode
        FROM judgments f
        JOIN judgments s
          ON s.run_id = f.run_id AND s.tree_id IS NOT DISTINCT FROM f.tree_id AND s.phase = f.phase
         AND s.iteration = f.iteration AND s.mode = f.mode
         AND s.node_a = f.node_b AND s.node_b = f.node_a AND s."order" = 1
        WHERE f.node_b IS NOT NULL AND f."order" = 0
        """,
    ),
]


def create_statements() -> list[str]:
    """DDL that creates the current schema version in an empty database (idempotent)."""
    stmts: list[str] = []
    for table, columns, comment in TABLES:
        cols = ", ".join(f'"{name}" {ctype}' for name, ctype, _ in columns)
        stmts.append(f"CREATE TABLE IF NOT EXISTS {table} ({cols})")
        stmts.append(f"COMMENT ON TABLE {table} IS {_sql_str(comment)}")
        for name, _, col_comment in columns:
            stmts.append(f'COMMENT ON COLUMN {table}."{name}" IS {_sql_str(col_comment)}')
    for view, comment, body in VIEWS:
        stmts.append(f"CREATE OR REPLACE VIEW {view} AS {body.strip()}")
        stmts.append(f"COMMENT ON VIEW {view} IS {_sql_str(comment)}")
    return stmts


def _sql_str(text: str) -> str:
    # Only for our own constant comments; data always goes through parameters or Arrow.
    return "'" + text.replace("'", "''") + "'"


def table_columns(table: str) -> list[str]:
    """Column names of a table, in order (the writer appends rows in this order)."""
    for name, columns, _ in TABLES:
        if name == table:
            return [c for c, _, _ in columns]
    raise KeyError(table)


def table_types(table: str) -> dict[str, str]:
    """Column name -> SQL type of a table (without constraints), in order."""
    for name, columns, _ in TABLES:
        if name == table:
            return {c: t.replace(" PRIMARY KEY", "") for c, t, _ in columns}
    raise KeyError(table)


def describe_schema() -> str:
    """Human-readable schema (what `presrm schema` prints)."""
    lines = [f"presrm trace store, schema version {SCHEMA_VERSION}", ""]
    for table, columns, comment in TABLES:
        lines.append(f"TABLE {table} -- {comment}")
        for name, ctype, col_comment in columns:
            lines.append(f"  {name:<18} {ctype.replace(' PRIMARY KEY', ''):<10} {col_comment}")
        lines.append("")
    for view, comment, _ in VIEWS:
        lines.append(f"VIEW {view} -- {comment}")
    return "\n".join(lines)
