-- The view an operator reads: one ticket's trail, in causal order, one line per event.
-- depends: audit_0002_trail_events
--
--   SELECT position, event_type, summary, hop_ms
--   FROM audit.ticket_trail WHERE ticket_id = 'T-1' ORDER BY position;

SET LOCAL ROLE triageflow_audit_owner;

-- Written not to fail on any payload: one odd event must not break a whole trail.
CREATE FUNCTION audit.event_summary(event_type text, payload jsonb) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $summary$
    SELECT CASE event_type
        WHEN 'ticket.received' THEN format(
            '%s from %s, tier %s',
            payload ->> 'channel', payload ->> 'source', payload #>> '{customer,tier}'
        )
        WHEN 'ticket.classified' THEN format(
            '%s %s',
            payload ->> 'category',
            CASE WHEN jsonb_typeof(payload -> 'confidence') = 'number'
                 THEN to_char((payload ->> 'confidence')::numeric, 'FM990.00') END
        ) || CASE WHEN payload -> 'degraded' = 'true'::jsonb
                  THEN format(', degraded: %s', payload ->> 'degraded_reason')
                  ELSE '' END
        WHEN 'ticket.decided' THEN format('%s', payload ->> 'mode') || coalesce(
            (SELECT format(' (%s)', string_agg(rule ->> 'rule_id', ', ' ORDER BY n))
             FROM jsonb_array_elements(
                 CASE WHEN jsonb_typeof(payload -> 'rules_fired') = 'array'
                      THEN payload -> 'rules_fired' ELSE '[]'::jsonb END
             ) WITH ORDINALITY AS fired (rule, n)
             WHERE rule ->> 'rule_id' IS NOT NULL
             HAVING count(*) > 0),
            ''
        )
        WHEN 'ticket.routed' THEN format(
            'queue %s, %s', payload ->> 'queue', payload ->> 'priority'
        )
        WHEN 'ticket.dead_lettered' THEN format(
            '%s: %s', payload ->> 'stage', payload ->> 'reason'
        )
        WHEN 'ticket.feedback' THEN format(
            '%s by %s', payload ->> 'kind', payload ->> 'actor'
        )
    END
$summary$;

COMMENT ON FUNCTION audit.event_summary(text, jsonb) IS
    'One short line about an event: category and confidence (classified), mode and rule ids '
    '(decided), queue and priority (routed), stage and reason (dead letter), kind and actor '
    '(feedback); NULL for an unknown event type.';

-- Causal order: a ticket's events form a tree through causation_id (and, for feedback,
-- the decision it judges). Producers' clocks disagree, so time alone can put an effect
-- before its cause: each event is placed at the later of its own time and its cause's
-- placement, then by depth in the tree, stage, and recording order. Events whose cause is
-- not (yet) recorded start a tree of their own.
--
-- The walk is per ticket inside a LATERAL subquery so that `WHERE ticket_id = ...` on the
-- view reaches the ticket_id index instead of walking the whole table.
CREATE VIEW audit.ticket_trail AS
SELECT
    tickets.ticket_id,
    trail.position,
    trail.seq,
    trail.occurred_at,
    trail.recorded_at,
    trail.event_type,
    trail.event_id,
    trail.causation_id,
    trail.producer_service,
    trail.summary,
    trail.hop_ms
FROM (SELECT DISTINCT ticket_id FROM audit.trail_events) AS tickets
CROSS JOIN LATERAL (
    WITH RECURSIVE events AS (
        SELECT
            e.*,
            coalesce(e.causation_id, e.payload ->> 'decision_event_id') AS parent_id
        FROM audit.trail_events AS e
        WHERE e.ticket_id = tickets.ticket_id
    ),
    walk (event_id, causal_at, depth) AS (
        SELECT root.event_id, root.occurred_at, 0
        FROM events AS root
        WHERE root.parent_id IS NULL
            OR root.parent_id = root.event_id
            OR NOT EXISTS (SELECT FROM events AS cause WHERE cause.event_id = root.parent_id)
        UNION ALL
        SELECT effect.event_id, greatest(effect.occurred_at, walk.causal_at), walk.depth + 1
        FROM walk
        JOIN events AS effect
            ON effect.parent_id = walk.event_id AND effect.event_id <> walk.event_id
    )
    SELECT
        row_number() OVER causal AS position,
        ev.seq,
        ev.occurred_at,
        ev.recorded_at,
        ev.event_type,
        ev.event_id,
        ev.causation_id,
        ev.producer_service,
        audit.event_summary(ev.event_type, ev.payload) AS summary,
        (extract(epoch FROM ev.occurred_at - lag(ev.occurred_at) OVER causal) * 1000)
            ::double precision AS hop_ms
    FROM events AS ev
    -- Events on a causation cycle are unreachable from a root; they still get a row.
    LEFT JOIN walk USING (event_id)
    WINDOW causal AS (
        ORDER BY
            coalesce(walk.causal_at, ev.occurred_at),
            coalesce(walk.depth, 0),
            CASE ev.event_type
                WHEN 'ticket.received' THEN 0
                WHEN 'ticket.classified' THEN 1
                WHEN 'ticket.decided' THEN 2
                WHEN 'ticket.routed' THEN 3
                WHEN 'ticket.dead_lettered' THEN 4
                WHEN 'ticket.feedback' THEN 5
                ELSE 6
            END,
            ev.seq
    )
) AS trail;

COMMENT ON VIEW audit.ticket_trail IS
    'One row per event of a ticket''s trail; ORDER BY position gives causal order '
    '(causes before effects even when producers'' clocks disagree). '
    'Filter on ticket_id: SELECT * FROM audit.ticket_trail WHERE ticket_id = ''T-1'' ORDER BY position.';
COMMENT ON COLUMN audit.ticket_trail.ticket_id IS 'The ticket.';
COMMENT ON COLUMN audit.ticket_trail.position IS
    '1, 2, 3, ... in causal order within the ticket: order by this.';
COMMENT ON COLUMN audit.ticket_trail.seq IS 'Recording order in audit.trail_events.';
COMMENT ON COLUMN audit.ticket_trail.occurred_at IS 'When the producer says it happened.';
COMMENT ON COLUMN audit.ticket_trail.recorded_at IS 'When the audit store recorded it.';
COMMENT ON COLUMN audit.ticket_trail.event_type IS 'Dotted event name.';
COMMENT ON COLUMN audit.ticket_trail.event_id IS 'Event id (key into audit.trail_events).';
COMMENT ON COLUMN audit.ticket_trail.causation_id IS 'The event that caused this one.';
COMMENT ON COLUMN audit.ticket_trail.producer_service IS 'Service that produced the event.';
COMMENT ON COLUMN audit.ticket_trail.summary IS
    'Short description from the payload (see audit.event_summary).';
COMMENT ON COLUMN audit.ticket_trail.hop_ms IS
    'Milliseconds from the previous event of this trail (by position) to this one, by '
    'occurred_at; NULL for the first. '
    'Negative means the producers'' clocks disagree.';

GRANT SELECT ON audit.ticket_trail TO triageflow_audit_writer, triageflow_audit_reader;

RESET ROLE;
