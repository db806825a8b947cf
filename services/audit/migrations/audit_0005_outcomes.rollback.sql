-- Undo audit_0005_outcomes: views, functions and an index; none of them holds data.
SET LOCAL ROLE triageflow_audit_owner;

DROP FUNCTION audit.dead_letter_rate(timestamptz, timestamptz);
DROP FUNCTION audit.outcome_metrics(
    timestamptz, timestamptz, text, interval, numeric, numeric, numeric
);
DROP VIEW audit.decision_outcomes;
DROP VIEW audit.feedback;
DROP VIEW audit.decisions;
DROP FUNCTION audit.ratio(bigint, bigint);
DROP INDEX audit.trail_events_feedback_decision_idx;

RESET ROLE;
