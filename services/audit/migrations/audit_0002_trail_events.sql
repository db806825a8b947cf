-- The append-only decision trail: schema `audit`, table `audit.trail_events`.
-- depends: audit_0001_roles
--
-- One row per event, written once: `event_id` is the primary key, so a replayed event is
-- recognised and ignored (INSERT ... ON CONFLICT DO NOTHING). Rows are never changed: a
-- trigger refuses UPDATE, DELETE and TRUNCATE for every role, the owner included, and the
-- writer role has no privilege to try. Corrections are new events.
--
-- Room for a hash chain: a later migration can add nullable `prev_hash`/`row_hash` columns
-- (metadata-only ALTER); a backfill must run as the owner with the append-only trigger
-- disabled inside that one migration's transaction.

-- Only the owner of the database can grant this; elsewhere it is a WARNING, not an error,
-- and the writer relies on PUBLIC's default TEMPORARY privilege for its staging table.
DO $temp$
BEGIN
    EXECUTE format('GRANT TEMPORARY ON DATABASE %I TO triageflow_audit_writer', current_database());
END
$temp$;

CREATE SCHEMA audit AUTHORIZATION triageflow_audit_owner;

-- Everything below is created as the owner role, so the owner role owns it.
SET LOCAL ROLE triageflow_audit_owner;

COMMENT ON SCHEMA audit IS
    'triageflow audit trail: every event on every topic, once, append-only.';

CREATE TABLE audit.trail_events (
    seq              bigserial   NOT NULL,
    event_id         text        NOT NULL,
    event_type       text        NOT NULL,
    ticket_id        text        NOT NULL,
    trace_id         text        NOT NULL,
    causation_id     text,
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    topic            text        NOT NULL,
    partition        integer     NOT NULL,
    kafka_offset     bigint      NOT NULL,
    producer_service text        NOT NULL,
    schema_version   integer     NOT NULL,
    payload          jsonb       NOT NULL,
    CONSTRAINT trail_events_pkey PRIMARY KEY (event_id),
    CONSTRAINT trail_events_seq_key UNIQUE (seq),
    -- The columns are an index into the payload; they must never contradict it.
    CONSTRAINT trail_events_payload_matches CHECK (
        payload ->> 'event_id' = event_id
        AND payload ->> 'event_type' = event_type
        AND payload ->> 'ticket_id' = ticket_id
    ),
    CONSTRAINT trail_events_partition_check CHECK (partition >= 0),
    CONSTRAINT trail_events_offset_check CHECK (kafka_offset >= 0)
);

CREATE INDEX trail_events_ticket_id_idx ON audit.trail_events (ticket_id);
CREATE INDEX trail_events_type_time_idx ON audit.trail_events (event_type, occurred_at);
-- Upstream events have no cause; leaving them out keeps the index small.
CREATE INDEX trail_events_causation_id_idx ON audit.trail_events (causation_id)
    WHERE causation_id IS NOT NULL;

COMMENT ON TABLE audit.trail_events IS
    'Every triageflow event, recorded once (primary key event_id) and never changed.';
COMMENT ON COLUMN audit.trail_events.seq IS
    'Recording order, assigned by the database; unique, increasing, may have gaps.';
COMMENT ON COLUMN audit.trail_events.event_id IS
    'The event''s id; a replayed duplicate is ignored on insert.';
COMMENT ON COLUMN audit.trail_events.event_type IS 'Dotted event name, e.g. ticket.decided.';
COMMENT ON COLUMN audit.trail_events.ticket_id IS 'The ticket the event is about (Kafka key).';
COMMENT ON COLUMN audit.trail_events.trace_id IS 'Trace id shared by one ticket''s journey.';
COMMENT ON COLUMN audit.trail_events.causation_id IS
    'The event that caused this one; NULL for upstream and downstream events.';
COMMENT ON COLUMN audit.trail_events.occurred_at IS 'When the producer says it happened.';
COMMENT ON COLUMN audit.trail_events.recorded_at IS
    'When the audit store recorded it (start of the inserting transaction).';
COMMENT ON COLUMN audit.trail_events.topic IS 'Kafka topic the event was consumed from.';
COMMENT ON COLUMN audit.trail_events.partition IS 'Kafka partition it was consumed from.';
COMMENT ON COLUMN audit.trail_events.kafka_offset IS 'Kafka offset it was consumed at.';
COMMENT ON COLUMN audit.trail_events.producer_service IS 'Service that produced the event.';
COMMENT ON COLUMN audit.trail_events.schema_version IS 'Contract version of the event.';
COMMENT ON COLUMN audit.trail_events.payload IS 'The whole event as JSON.';

CREATE FUNCTION audit.refuse_change() RETURNS trigger
    LANGUAGE plpgsql
AS $refuse$
BEGIN
    RAISE EXCEPTION '%.% is append-only: % is not allowed', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Record a correction as a new event; the trail is never changed.';
END
$refuse$;

COMMENT ON FUNCTION audit.refuse_change() IS
    'Trigger function: refuses any change to an append-only table.';

-- Statement-level, so it fires even when no row matches and costs nothing on INSERT.
CREATE TRIGGER trail_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON audit.trail_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();

REVOKE ALL ON SCHEMA audit FROM PUBLIC;
REVOKE ALL ON TABLE audit.trail_events FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.refuse_change() FROM PUBLIC;

GRANT USAGE ON SCHEMA audit TO triageflow_audit_writer, triageflow_audit_reader;
GRANT SELECT, INSERT ON TABLE audit.trail_events TO triageflow_audit_writer;
-- USAGE allows nextval() for `seq`; not UPDATE, so the writer cannot setval() it.
GRANT USAGE ON SEQUENCE audit.trail_events_seq_seq TO triageflow_audit_writer;
GRANT SELECT ON TABLE audit.trail_events TO triageflow_audit_reader;

-- Views and tables added to the schema later are readable without another grant.
ALTER DEFAULT PRIVILEGES IN SCHEMA audit
    GRANT SELECT ON TABLES TO triageflow_audit_writer, triageflow_audit_reader;

RESET ROLE;
