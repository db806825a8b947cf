-- Outcome metrics: how the decisions in the trail turned out, judged by later feedback.
-- depends: audit_0004_hash_chain
--
--   audit.decisions           one row per ticket.decided: category, mode, model, policy
--   audit.feedback            one row per ticket.feedback, typed
--   audit.decision_outcomes   one row per decision with its feedback folded into flags
--   audit.outcome_metrics(window_start, window_end, group_by, bucket, minutes...)
--                             rates per group (category / model / policy / all), time
--                             bucket and mode, plus an 'all' row per group and bucket
--   audit.dead_letter_rate(window_start, window_end)
--
--   SELECT * FROM audit.outcome_metrics(now() - interval '7 days', now(), 'category');
--
-- Definitions (docs/outcomes.md): a decision is judged once it has any feedback; a judged
-- decision is correct unless its feedback overrides the category or the queue, reacts
-- negatively (negative reply or CSAT <= 2) or reopens it. Views hold no data: the rollback
-- drops them.

SET LOCAL ROLE triageflow_audit_owner;

-- Feedback finds its decision through the payload; without this index every decision of
-- a report would scan all feedback. Built inside the migration's transaction (not
-- CONCURRENTLY), so it blocks inserts while it builds: seconds per million events.
CREATE INDEX trail_events_feedback_decision_idx
    ON audit.trail_events ((payload ->> 'decision_event_id'))
    WHERE event_type = 'ticket.feedback';

COMMENT ON INDEX audit.trail_events_feedback_decision_idx IS
    'Feedback events by the decision they judge (audit.decision_outcomes).';

CREATE FUNCTION audit.ratio(numerator bigint, denominator bigint) RETURNS numeric
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $ratio$
    SELECT CASE WHEN denominator > 0 THEN numerator::numeric / denominator END
$ratio$;

COMMENT ON FUNCTION audit.ratio(bigint, bigint) IS
    'numerator / denominator as numeric; NULL when the denominator is 0 (no data, not 0%).';

-- ------------------------------------------------------------------------ decisions

CREATE VIEW audit.decisions AS
SELECT
    e.event_id AS decision_event_id,
    e.ticket_id,
    e.occurred_at AS decided_at,
    e.seq,
    e.payload ->> 'mode' AS mode,
    e.payload #>> '{classification,category}' AS category,
    CASE WHEN jsonb_typeof(e.payload #> '{classification,confidence}') = 'number'
         THEN (e.payload #>> '{classification,confidence}')::double precision END
        AS confidence,
    coalesce(e.payload #> '{classification,degraded}' = 'true'::jsonb, false) AS degraded,
    e.payload #>> '{classification,model,name}' AS model_name,
    e.payload #>> '{classification,model,version}' AS model_version,
    e.payload #>> '{classification,model,backend}' AS model_backend,
    concat_ws('@',
        e.payload #>> '{classification,model,name}',
        e.payload #>> '{classification,model,version}') AS model,
    e.payload #>> '{policy,name}' AS policy_name,
    e.payload #>> '{policy,version}' AS policy_version,
    e.payload #>> '{policy,content_hash}' AS policy_content_hash,
    e.payload #>> '{policy,approved_by}' AS policy_approved_by,
    concat_ws('@', e.payload #>> '{policy,name}', e.payload #>> '{policy,version}') AS policy,
    e.payload ->> 'owner_team' AS owner_team
FROM audit.trail_events AS e
WHERE e.event_type = 'ticket.decided';

COMMENT ON VIEW audit.decisions IS
    'One row per recorded decision (ticket.decided): what was decided, by which model and '
    'policy version. Filter on decided_at for a time window.';
COMMENT ON COLUMN audit.decisions.decision_event_id IS
    'Id of the ticket.decided event; feedback refers to it (decision_event_id).';
COMMENT ON COLUMN audit.decisions.ticket_id IS 'The ticket.';
COMMENT ON COLUMN audit.decisions.decided_at IS 'When the policy decided (occurred_at).';
COMMENT ON COLUMN audit.decisions.seq IS 'Recording order in audit.trail_events.';
COMMENT ON COLUMN audit.decisions.mode IS 'autonomous, assist or human.';
COMMENT ON COLUMN audit.decisions.category IS 'Category the classifier gave and the policy used.';
COMMENT ON COLUMN audit.decisions.confidence IS 'Calibrated confidence of that category.';
COMMENT ON COLUMN audit.decisions.degraded IS 'The classification came from a fallback path.';
COMMENT ON COLUMN audit.decisions.model_name IS 'Model name, e.g. tfidf-lr.';
COMMENT ON COLUMN audit.decisions.model_version IS 'Model version (hash of data and settings).';
COMMENT ON COLUMN audit.decisions.model_backend IS 'Backend: local, llm, cascade, constant.';
COMMENT ON COLUMN audit.decisions.model IS 'name@version of the model: the per-model key.';
COMMENT ON COLUMN audit.decisions.policy_name IS 'Policy name.';
COMMENT ON COLUMN audit.decisions.policy_version IS 'Policy version from the policy file.';
COMMENT ON COLUMN audit.decisions.policy_content_hash IS 'sha256 of the policy file.';
COMMENT ON COLUMN audit.decisions.policy_approved_by IS 'Who approved that policy version.';
COMMENT ON COLUMN audit.decisions.policy IS 'name@version of the policy: the per-policy key.';
COMMENT ON COLUMN audit.decisions.owner_team IS
    'Team accountable for this category''s outcomes, as the policy said.';

-- ------------------------------------------------------------------------- feedback

-- Every cast is guarded: one odd payload must not break a report.
CREATE VIEW audit.feedback AS
SELECT
    e.event_id AS feedback_event_id,
    e.payload ->> 'decision_event_id' AS decision_event_id,
    e.ticket_id,
    e.occurred_at AS given_at,
    e.seq,
    e.payload ->> 'kind' AS kind,
    e.payload ->> 'actor' AS actor,
    e.payload ->> 'correct_category' AS correct_category,
    e.payload ->> 'correct_queue' AS correct_queue,
    CASE WHEN jsonb_typeof(e.payload -> 'resolved') = 'boolean'
         THEN (e.payload ->> 'resolved')::boolean END AS resolved,
    CASE WHEN jsonb_typeof(e.payload -> 'handle_time_seconds') = 'number'
         THEN (e.payload ->> 'handle_time_seconds')::double precision END
        AS handle_time_seconds,
    CASE WHEN jsonb_typeof(e.payload -> 'csat') = 'number'
         THEN round((e.payload ->> 'csat')::numeric)::integer END AS csat,
    CASE WHEN jsonb_typeof(e.payload -> 'negative_reply') = 'boolean'
         THEN (e.payload ->> 'negative_reply')::boolean END AS negative_reply
FROM audit.trail_events AS e
WHERE e.event_type = 'ticket.feedback';

COMMENT ON VIEW audit.feedback IS
    'One row per recorded feedback event (ticket.feedback), its fields typed.';
COMMENT ON COLUMN audit.feedback.feedback_event_id IS 'Id of the feedback event.';
COMMENT ON COLUMN audit.feedback.decision_event_id IS 'The decision it judges.';
COMMENT ON COLUMN audit.feedback.ticket_id IS 'The ticket.';
COMMENT ON COLUMN audit.feedback.given_at IS 'When it was given (occurred_at).';
COMMENT ON COLUMN audit.feedback.seq IS 'Recording order in audit.trail_events.';
COMMENT ON COLUMN audit.feedback.kind IS 'override, resolution, customer_reaction or reopened.';
COMMENT ON COLUMN audit.feedback.actor IS 'Who gave it: agent id, customer, a system.';
COMMENT ON COLUMN audit.feedback.correct_category IS 'Override: the right category.';
COMMENT ON COLUMN audit.feedback.correct_queue IS 'Override: the right queue.';
COMMENT ON COLUMN audit.feedback.resolved IS 'Resolution: whether the ticket was resolved.';
COMMENT ON COLUMN audit.feedback.handle_time_seconds IS 'Resolution: agent handle time, s.';
COMMENT ON COLUMN audit.feedback.csat IS 'Customer reaction: CSAT score 1-5.';
COMMENT ON COLUMN audit.feedback.negative_reply IS
    'Customer reaction: the customer replied negatively to an AI answer.';

-- ---------------------------------------------------------------- decision outcomes

-- LATERAL per decision, so that a window filter on decided_at narrows the decisions
-- first and each one looks up only its own routed event and feedback (both indexed).
CREATE VIEW audit.decision_outcomes AS
SELECT
    d.decision_event_id,
    d.ticket_id,
    d.decided_at,
    d.mode,
    d.category,
    d.confidence,
    d.degraded,
    d.model_name,
    d.model_version,
    d.model,
    d.policy_name,
    d.policy_version,
    d.policy,
    d.owner_team,
    routed.queue AS routed_queue,
    judgement.feedback_events,
    judgement.feedback_events > 0 AS judged,
    coalesce(judgement.category_overridden, false) AS category_overridden,
    coalesce(judgement.queue_overridden, false) AS queue_overridden,
    coalesce(judgement.category_overridden OR judgement.queue_overridden, false) AS overridden,
    coalesce(judgement.negative_reaction, false) AS negative_reaction,
    coalesce(judgement.reopened, false) AS reopened,
    coalesce(judgement.escalated, false) AS escalated,
    judgement.resolved,
    coalesce(judgement.ever_resolved, false) AS ever_resolved,
    judgement.handle_time_seconds,
    judgement.csat,
    CASE WHEN judgement.feedback_events > 0 THEN NOT coalesce(
        judgement.category_overridden OR judgement.queue_overridden
            OR judgement.negative_reaction OR judgement.reopened,
        false
    ) END AS judged_correct,
    judgement.last_feedback_at
FROM audit.decisions AS d
LEFT JOIN LATERAL (
    SELECT r.payload ->> 'queue' AS queue
    FROM audit.trail_events AS r
    WHERE r.causation_id = d.decision_event_id AND r.event_type = 'ticket.routed'
      AND coalesce(r.payload ->> 'reason', 'decision') = 'decision'
    ORDER BY r.occurred_at, r.seq
    LIMIT 1
) AS routed ON true
CROSS JOIN LATERAL (
    SELECT
        count(*) AS feedback_events,
        bool_or(f.correct_category IS NOT NULL
                AND f.correct_category IS DISTINCT FROM d.category) AS category_overridden,
        bool_or(f.correct_queue IS NOT NULL
                AND f.correct_queue IS DISTINCT FROM routed.queue) AS queue_overridden,
        bool_or(f.negative_reply OR f.csat <= 2) AS negative_reaction,
        bool_or(f.kind = 'reopened') AS reopened,
        (array_agg(f.resolved ORDER BY f.given_at DESC, f.seq DESC)
            FILTER (WHERE f.resolved IS NOT NULL))[1] AS resolved,
        bool_or(f.resolved) AS ever_resolved,
        sum(f.handle_time_seconds) AS handle_time_seconds,
        (array_agg(f.csat ORDER BY f.given_at DESC, f.seq DESC)
            FILTER (WHERE f.csat IS NOT NULL))[1] AS csat,
        -- The router re-routes a negative reaction to an AI answer to a human queue: a
        -- ticket.routed caused by the feedback event, with reason negative_customer_reaction.
        bool_or(EXISTS (
            SELECT FROM audit.trail_events AS r
            WHERE r.causation_id = f.feedback_event_id AND r.event_type = 'ticket.routed'
              AND r.payload ->> 'reason' = 'negative_customer_reaction'
        )) AS escalated,
        max(f.given_at) AS last_feedback_at
    FROM audit.feedback AS f
    WHERE f.decision_event_id = d.decision_event_id
) AS judgement;

COMMENT ON VIEW audit.decision_outcomes IS
    'One row per decision with all its feedback folded into flags (docs/outcomes.md). '
    'Filter on decided_at; feedback counts whenever it arrived.';
COMMENT ON COLUMN audit.decision_outcomes.decision_event_id IS 'Id of the ticket.decided event.';
COMMENT ON COLUMN audit.decision_outcomes.ticket_id IS 'The ticket.';
COMMENT ON COLUMN audit.decision_outcomes.decided_at IS 'When the policy decided.';
COMMENT ON COLUMN audit.decision_outcomes.mode IS 'autonomous, assist or human.';
COMMENT ON COLUMN audit.decision_outcomes.category IS 'Decided category.';
COMMENT ON COLUMN audit.decision_outcomes.confidence IS 'Confidence of that category.';
COMMENT ON COLUMN audit.decision_outcomes.degraded IS 'Classification came from a fallback.';
COMMENT ON COLUMN audit.decision_outcomes.model_name IS 'Model name.';
COMMENT ON COLUMN audit.decision_outcomes.model_version IS 'Model version.';
COMMENT ON COLUMN audit.decision_outcomes.model IS 'name@version of the model.';
COMMENT ON COLUMN audit.decision_outcomes.policy_name IS 'Policy name.';
COMMENT ON COLUMN audit.decision_outcomes.policy_version IS 'Policy version.';
COMMENT ON COLUMN audit.decision_outcomes.policy IS 'name@version of the policy.';
COMMENT ON COLUMN audit.decision_outcomes.owner_team IS 'Accountable team.';
COMMENT ON COLUMN audit.decision_outcomes.routed_queue IS
    'Queue of the first ticket.routed caused by this decision (reason decision, not an '
    'escalation); NULL if none is recorded.';
COMMENT ON COLUMN audit.decision_outcomes.feedback_events IS
    'How many feedback events judge this decision.';
COMMENT ON COLUMN audit.decision_outcomes.judged IS 'At least one feedback event.';
COMMENT ON COLUMN audit.decision_outcomes.category_overridden IS
    'Some feedback names a correct_category other than the decided one.';
COMMENT ON COLUMN audit.decision_outcomes.queue_overridden IS
    'Some feedback names a correct_queue other than routed_queue (any, if none recorded).';
COMMENT ON COLUMN audit.decision_outcomes.overridden IS 'Category or queue overridden.';
COMMENT ON COLUMN audit.decision_outcomes.negative_reaction IS
    'Some feedback has negative_reply true or a CSAT of 1 or 2.';
COMMENT ON COLUMN audit.decision_outcomes.reopened IS 'Some feedback of kind reopened.';
COMMENT ON COLUMN audit.decision_outcomes.escalated IS
    'The router re-routed the ticket to a human after a negative reaction to this decision.';
COMMENT ON COLUMN audit.decision_outcomes.resolved IS
    'The latest resolution''s resolved flag; NULL if no resolution was reported.';
COMMENT ON COLUMN audit.decision_outcomes.ever_resolved IS
    'Some resolution reported resolved = true.';
COMMENT ON COLUMN audit.decision_outcomes.handle_time_seconds IS
    'Sum of the reported handle times, seconds; NULL if none.';
COMMENT ON COLUMN audit.decision_outcomes.csat IS 'The latest CSAT score; NULL if none.';
COMMENT ON COLUMN audit.decision_outcomes.judged_correct IS
    'NULL if not judged; else false when overridden, negative reaction or reopened.';
COMMENT ON COLUMN audit.decision_outcomes.last_feedback_at IS 'When the latest feedback came.';

-- ------------------------------------------------------------------ outcome metrics

CREATE FUNCTION audit.outcome_metrics(
    window_start timestamptz,
    window_end timestamptz,
    group_by text DEFAULT 'all',
    bucket interval DEFAULT NULL,
    minutes_human numeric DEFAULT 8,
    minutes_assist numeric DEFAULT 5,
    minutes_autonomous numeric DEFAULT 0.5
) RETURNS TABLE (
    dimension text,
    group_key text,
    bucket_start timestamptz,
    mode text,
    decisions bigint,
    share numeric,
    judged bigint,
    judged_correct bigint,
    judged_precision numeric,
    overridden bigint,
    override_rate numeric,
    override_rate_all numeric,
    negative_reactions bigint,
    escalated bigint,
    resolution_reported bigint,
    resolved bigint,
    resolution_rate numeric,
    reopen_base bigint,
    reopened bigint,
    reopen_rate numeric,
    csat_responses bigint,
    csat_mean numeric,
    handle_time_reported bigint,
    handle_time_mean_seconds numeric,
    minutes_saved numeric
)
    LANGUAGE plpgsql STABLE PARALLEL SAFE
    -- The planner prices the per-decision lookups high enough to JIT-compile the query,
    -- which then costs seconds and saves nothing (measured: 3.2 s with JIT, 0.6 s
    -- without, for a week of 5,000 decisions).
    SET jit = off
AS $metrics$
#variable_conflict use_column
DECLARE
    groupings text[] := array(SELECT trim(g) FROM unnest(string_to_array(group_by, ',')) AS g);
BEGIN
    IF group_by IS NULL OR cardinality(groupings) = 0
        OR NOT groupings <@ ARRAY['all', 'category', 'model', 'policy'] THEN
        RAISE EXCEPTION 'group_by must be all, category, model or policy (or a comma-separated '
                        'list of them), not %', group_by
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF bucket IS NOT NULL AND bucket <= interval '0' THEN
        RAISE EXCEPTION 'bucket must be a positive interval, not %', bucket
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    -- Each decision's outcome is worked out once, however many groupings are asked for.
    WITH outcomes AS MATERIALIZED (
        SELECT
            o.category, o.model, o.policy, o.mode, o.judged, o.judged_correct, o.overridden,
            o.negative_reaction, o.escalated, o.resolved, o.ever_resolved, o.reopened,
            o.csat, o.handle_time_seconds,
            -- Buckets are aligned to midnight UTC and weeks start on Monday (3 January
            -- 2000 was one), so the same bucket has the same start in every report.
            CASE WHEN bucket IS NULL THEN window_start
                 ELSE date_bin(bucket, o.decided_at, timestamptz '2000-01-03 00:00:00+00')
            END AS bucket_start,
            CASE o.mode
                WHEN 'assist' THEN minutes_human - minutes_assist
                WHEN 'autonomous' THEN minutes_human - minutes_autonomous
                ELSE 0
            END AS saved
        FROM audit.decision_outcomes AS o
        WHERE o.decided_at >= window_start AND o.decided_at < window_end
    ),
    scoped AS (
        SELECT
            g.dimension,
            CASE g.dimension
                WHEN 'category' THEN s.category
                WHEN 'model' THEN s.model
                WHEN 'policy' THEN s.policy
                ELSE 'all'
            END AS group_key,
            s.*
        FROM outcomes AS s
        CROSS JOIN unnest(groupings) AS g (dimension)
    ),
    counted AS (
        SELECT
            s.dimension,
            s.group_key,
            s.bucket_start,
            CASE WHEN GROUPING(s.mode) = 1 THEN 'all' ELSE s.mode END AS mode,
            count(*) AS decisions,
            count(*) FILTER (WHERE s.judged) AS judged,
            count(*) FILTER (WHERE s.judged_correct) AS judged_correct,
            count(*) FILTER (WHERE s.overridden) AS overridden,
            count(*) FILTER (WHERE s.negative_reaction) AS negative_reactions,
            count(*) FILTER (WHERE s.escalated) AS escalated,
            count(s.resolved) AS resolution_reported,
            count(*) FILTER (WHERE s.resolved) AS resolved,
            count(*) FILTER (WHERE s.ever_resolved OR s.reopened) AS reopen_base,
            count(*) FILTER (WHERE s.reopened) AS reopened,
            count(s.csat) AS csat_responses,
            avg(s.csat) AS csat_mean,
            count(s.handle_time_seconds) AS handle_time_reported,
            avg(s.handle_time_seconds)::numeric AS handle_time_mean_seconds,
            coalesce(sum(s.saved), 0) AS minutes_saved
        FROM scoped AS s
        GROUP BY GROUPING SETS ((s.dimension, s.group_key, s.bucket_start, s.mode),
                                (s.dimension, s.group_key, s.bucket_start))
    )
    SELECT
        c.dimension,
        c.group_key,
        c.bucket_start,
        c.mode,
        c.decisions,
        audit.ratio(c.decisions, max(c.decisions) FILTER (WHERE c.mode = 'all')
            OVER (PARTITION BY c.dimension, c.group_key, c.bucket_start)),
        c.judged,
        c.judged_correct,
        audit.ratio(c.judged_correct, c.judged),
        c.overridden,
        audit.ratio(c.overridden, c.judged),
        audit.ratio(c.overridden, c.decisions),
        c.negative_reactions,
        c.escalated,
        c.resolution_reported,
        c.resolved,
        audit.ratio(c.resolved, c.resolution_reported),
        c.reopen_base,
        c.reopened,
        audit.ratio(c.reopened, c.reopen_base),
        c.csat_responses,
        c.csat_mean,
        c.handle_time_reported,
        c.handle_time_mean_seconds,
        c.minutes_saved
    FROM counted AS c
    ORDER BY
        array_position(groupings, c.dimension),
        c.group_key,
        c.bucket_start,
        array_position(ARRAY['all', 'autonomous', 'assist', 'human'], c.mode),
        c.mode;
END
$metrics$;

COMMENT ON FUNCTION audit.outcome_metrics(
    timestamptz, timestamptz, text, interval, numeric, numeric, numeric
) IS
    'Outcome metrics of the decisions made in [window_start, window_end), one row per '
    'dimension (group_by: all, category, model or policy, or a comma-separated list of them), '
    'group (group_key), time bucket (bucket_start: date_bin aligned to midnight UTC, weeks '
    'from Monday; a NULL bucket gives one row per group starting at window_start) and mode, '
    'plus mode ''all'' per group and bucket. Rates are NULL when their denominator is 0. '
    'minutes_*: agent minutes a ticket takes in each mode, for minutes_saved. Definitions: '
    'docs/outcomes.md. Columns: decisions; share (of the group and bucket); judged (with any '
    'feedback), judged_correct, judged_precision (= autonomous precision on the autonomous '
    'row); overridden, override_rate (of judged), override_rate_all (of decisions); '
    'negative_reactions; escalated (re-routed to a human after a negative reaction); '
    'resolution_reported, resolved, resolution_rate (latest resolution); reopen_base (ever '
    'resolved or reopened), reopened, reopen_rate; csat_responses, csat_mean (latest score '
    'per decision); handle_time_reported, handle_time_mean_seconds; minutes_saved.';

CREATE FUNCTION audit.dead_letter_rate(window_start timestamptz, window_end timestamptz)
RETURNS TABLE (
    inbound_messages bigint,
    dead_letters bigint,
    inbound_dead_letters bigint,
    dead_letter_rate numeric
)
    LANGUAGE sql STABLE PARALLEL SAFE
AS $dead$
    SELECT
        counts.received + counts.inbound_dead,
        counts.dead,
        counts.inbound_dead,
        audit.ratio(counts.dead, counts.received + counts.inbound_dead)
    FROM (
        SELECT
            count(*) FILTER (WHERE e.event_type = 'ticket.received') AS received,
            count(*) FILTER (WHERE e.event_type = 'ticket.dead_lettered') AS dead,
            -- A malformed inbound message never becomes a ticket.received: its dead
            -- letter is how it is counted among the inbound messages.
            count(*) FILTER (
                WHERE e.event_type = 'ticket.dead_lettered'
                  AND e.payload ->> 'original_topic' LIKE '%tickets.inbound'
            ) AS inbound_dead
        FROM audit.trail_events AS e
        WHERE e.event_type IN ('ticket.received', 'ticket.dead_lettered')
          AND e.occurred_at >= window_start AND e.occurred_at < window_end
    ) AS counts
$dead$;

COMMENT ON FUNCTION audit.dead_letter_rate(timestamptz, timestamptz) IS
    'Dead letters (every stage) per inbound message in [window_start, window_end): '
    'inbound_messages = ticket.received + dead letters of malformed inbound messages; '
    'dead_letters; inbound_dead_letters; dead_letter_rate (NULL with no inbound message).';

REVOKE ALL ON FUNCTION audit.ratio(bigint, bigint) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.outcome_metrics(
    timestamptz, timestamptz, text, interval, numeric, numeric, numeric
) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.dead_letter_rate(timestamptz, timestamptz) FROM PUBLIC;

GRANT SELECT ON audit.decisions, audit.feedback, audit.decision_outcomes
    TO triageflow_audit_writer, triageflow_audit_reader;
GRANT EXECUTE ON FUNCTION
    audit.ratio(bigint, bigint),
    audit.outcome_metrics(timestamptz, timestamptz, text, interval, numeric, numeric, numeric),
    audit.dead_letter_rate(timestamptz, timestamptz)
    TO triageflow_audit_writer, triageflow_audit_reader;

RESET ROLE;
