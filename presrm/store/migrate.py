"""Upgrading run files written by an older presrm to the current schema, in place.

Version 2 → 3: ``judgments.mode`` said ``pairwise`` for the likelihood comparison too; such
rows are recognised by the text the likelihood judge stores as its raw output (its two
log-probs, ``logp(A)=… logp(B)=…``, with no check text) and relabelled ``likelihood``. The
new columns ``verdict_source`` and ``probs_at`` are filled from what version 2 did (the
run's ``judge.verdict`` setting; probabilities read at the first ``[[`` of the text, or
after an appended one). Held-out judge metrics of iterations judged only by the likelihood
comparison are renamed from ``judge_accuracy`` to ``likelihood_accuracy`` (their
first-order and consistency numbers, meaningless for a comparison that is consistent by
design, are dropped). Everything runs in one transaction with the version bump.
"""

from __future__ import annotations

import duckdb

from presrm.store.schema import SCHEMA_VERSION, create_statements

UPGRADABLE = ("2",)
"""Schema versions this presrm upgrades when it opens such a file."""

# The likelihood judge's raw output: exactly its two log-probs (presrm.search.judge).
_LIKELIHOOD_RAW = r"logp\(A\)=-?[0-9]+(\.[0-9]+)?(e-?[0-9]+)? logp\(B\)=-?[0-9]+(\.[0-9]+)?(e-?[0-9]+)?"

# Iterations whose held-out pairs (resp. search pairs) were judged by the likelihood comparison only.
_LIKELIHOOD_ONLY = """
    SELECT iteration FROM judgments WHERE phase {phases} AND mode = 'likelihood'
    EXCEPT SELECT iteration FROM judgments WHERE phase {phases} AND mode = 'pairwise'
"""

V2_TO_V3: list[tuple[str, list[str]]] = [
    ("ALTER TABLE judgments ADD COLUMN IF NOT EXISTS verdict_source VARCHAR", []),
    ("ALTER TABLE judgments ADD COLUMN IF NOT EXISTS probs_at VARCHAR", []),
    (
        "UPDATE judgments SET mode = 'likelihood'"
        " WHERE mode = 'pairwise' AND check_text IS NULL AND regexp_full_match(raw_output, ?)",
        [_LIKELIHOOD_RAW],
    ),
    (
        "UPDATE judgments SET verdict_source = CASE"
        " WHEN mode = 'likelihood' THEN 'logprob'"
        " WHEN mode = 'pointwise' THEN 'probs'"
        " ELSE coalesce((SELECT json_extract_string(r.config_json, '$.judge.verdict')"
        "                FROM runs r WHERE r.run_id = judgments.run_id), 'text') END"
        " WHERE verdict IS NOT NULL",
        [],
    ),
    (
        "UPDATE judgments SET probs_at = CASE WHEN contains(raw_output, '[[') THEN 'verdict' ELSE 'appended' END"
        " WHERE mode = 'pairwise' AND p_a IS NOT NULL",
        [],
    ),
    (
        "UPDATE eval_metrics SET metric = 'likelihood_accuracy' WHERE metric = 'judge_accuracy'"
        " AND iteration IN (" + _LIKELIHOOD_ONLY.format(phases="= 'eft_test'") + ")",
        [],
    ),
    (
        "DELETE FROM eval_metrics WHERE metric = 'judge_accuracy_order0'"
        " AND iteration IN (" + _LIKELIHOOD_ONLY.format(phases="= 'eft_test'") + ")",
        [],
    ),
    (
        "DELETE FROM eval_metrics WHERE metric = 'judge_consistency'"
        " AND iteration IN (" + _LIKELIHOOD_ONLY.format(phases="IN ('train', 'eval')") + ")",
        [],
    ),
]


def stored_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The file's schema version, or None when it has no presrm_meta table (not a run file yet)."""
    try:
        rows = con.execute("SELECT value FROM presrm_meta WHERE key = 'schema_version'").fetchall()
    except duckdb.CatalogException:
        return None
    return str(rows[0][0]) if rows else None


def upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a file of an UPGRADABLE version to the current one (a writable connection)."""
    con.execute("BEGIN")
    try:
        for sql, params in V2_TO_V3:
            con.execute(sql, params)
        for stmt in create_statements():  # new comments, the new judge_pairs view
            con.execute(stmt)
        con.execute(
            "UPDATE presrm_meta SET value = ? WHERE key = 'schema_version'",
            [str(SCHEMA_VERSION)],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
