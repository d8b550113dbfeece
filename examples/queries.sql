-- SQL recipes over a presrm run file: presrm sql RUN.duckdb "$(cat examples/queries.sql | sed -n '/-- 1/,/;/p')"
-- or open the file in any DuckDB client (read-only while a run writes it).

-- 1. Accuracy per iteration and decoding mode
SELECT iteration, mode, round(avg(correct::INT), 3) AS accuracy, count(*) AS n
FROM evals GROUP BY ALL ORDER BY ALL;

-- 2. Every evaluation metric, one column per iteration
PIVOT eval_metrics ON iteration USING first(value) GROUP BY metric ORDER BY metric;

-- 3. Most confident wrong solutions (self-judged search on eval problems)
SELECT e.iteration, e.problem_id, e.min_score, e.final_answer, p.answer
FROM evals e JOIN problems p USING (run_id, problem_id)
WHERE e.mode = 'search' AND NOT e.correct ORDER BY e.min_score DESC LIMIT 10;

-- 4. Judge vs the task's step checker: how often does the chosen step pass the checker?
SELECT iteration, phase, avg(step_check::INT) AS chosen_steps_correct,
       (SELECT avg(step_check::INT) FROM nodes m WHERE m.iteration = n.iteration AND m.phase = n.phase) AS all_steps_correct
FROM nodes n WHERE chosen AND NOT rolled_back GROUP BY ALL ORDER BY ALL;

-- 5. Position bias: how often does the judge pick the step shown first?
SELECT iteration, phase, avg((verdict = 'A')::INT) AS picks_first, count(*) AS calls
FROM judgments WHERE mode = 'pairwise' AND verdict IS NOT NULL GROUP BY ALL ORDER BY ALL;

-- 6. Steps per solution and tokens per step over iterations (the paper: fewer, longer steps)
SELECT iteration, avg(n_steps) AS steps, sum(n_tokens) / sum(n_steps) AS tokens_per_step
FROM evals WHERE mode = 'greedy' GROUP BY iteration ORDER BY iteration;

-- 7. The step preference pairs step-DPO trains on
SELECT c.iteration, c.tree_id, c.depth, c.text AS chosen, r.text AS rejected, c.self_score, r.self_score
FROM nodes c JOIN nodes r ON r.tree_id = c.tree_id AND r.parent_id IS NOT DISTINCT FROM c.parent_id
 AND r.expansion = c.expansion AND r.rejected
WHERE c.chosen AND NOT c.rolled_back AND c.phase = 'train' LIMIT 20;

-- 8. Rebuild one tree
WITH RECURSIVE tree AS (
    SELECT node_id, parent_id, depth, text, self_score, chosen, CAST(node_id AS VARCHAR) AS path
    FROM nodes WHERE tree_id = 0 AND parent_id IS NULL
    UNION ALL
    SELECT n.node_id, n.parent_id, n.depth, n.text, n.self_score, n.chosen, tree.path || '/' || n.node_id
    FROM nodes n JOIN tree ON n.parent_id = tree.node_id
)
SELECT repeat('  ', depth - 1) || text AS step, self_score, chosen FROM tree ORDER BY path;
