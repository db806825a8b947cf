-- Tamper evidence: every row of audit.trail_events becomes a link of one global hash chain.
-- depends: audit_0003_ticket_trail
--
--   digest   = audit.row_digest(the row's columns)       sha256 of a canonical serialisation
--   row_hash = sha256(prev_hash || digest)                 computed by the writer
--   prev_hash = row_hash of the row before it (by seq); 32 zero bytes for the first row
--
-- One chain for the whole table, ordered by `seq`, rather than one per ticket: a per-ticket
-- chain cannot notice that a ticket's whole trail (or its newest row) was removed, and
-- locking hundreds of tickets per batch would exhaust the lock table. The price is one
-- advisory lock per insert batch, so writers append one batch at a time (measured in
-- services/audit/README.md). A changed, removed or reordered row breaks the chain at that
-- row; only the newest rows can be cut off unnoticed, which is why `triageflow audit verify`
-- prints the head to be recorded elsewhere and checks a recorded head with `--anchor`.
--
-- The digest is computed by PostgreSQL from the stored values (jsonb in its normalised
-- form), so the writer and `audit verify` agree however a client serialises JSON.

SET LOCAL ROLE triageflow_audit_owner;

-- The canonical serialisation is binary, not text: fixed-width big-endian numbers and
-- timestamps (microseconds, so no time zone or DateStyle can change it), each text
-- prefixed by its length (NULL as length -1), and jsonb's own wire format for the payload.
-- Formatting timestamps or building a JSON array cost twice as much per row (measured).
-- STABLE (convert_to is), so that the planner inlines both functions into the callers.
CREATE FUNCTION audit.digest_text(value text) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $text$
    SELECT coalesce(int4send(length(value)) || convert_to(value, 'UTF8'), int4send(-1))
$text$;

COMMENT ON FUNCTION audit.digest_text(text) IS
    'A text value as audit.row_digest serialises it: length in characters (int4, -1 for '
    'NULL), then its UTF-8 bytes.';

CREATE FUNCTION audit.row_digest(
    seq bigint,
    event_id text,
    event_type text,
    ticket_id text,
    trace_id text,
    causation_id text,
    occurred_at timestamptz,
    recorded_at timestamptz,
    topic text,
    partition integer,
    kafka_offset bigint,
    producer_service text,
    schema_version integer,
    payload jsonb
) RETURNS bytea
    LANGUAGE sql STABLE PARALLEL SAFE
AS $digest$
    SELECT sha256(
        int8send(seq)
        || audit.digest_text(event_id)
        || audit.digest_text(event_type)
        || audit.digest_text(ticket_id)
        || audit.digest_text(trace_id)
        || audit.digest_text(causation_id)
        || timestamptz_send(occurred_at)
        || timestamptz_send(recorded_at)
        || audit.digest_text(topic)
        || int4send(partition)
        || int8send(kafka_offset)
        || audit.digest_text(producer_service)
        || int4send(schema_version)
        || jsonb_send(payload)
    )
$digest$;

COMMENT ON FUNCTION audit.row_digest(
    bigint, text, text, text, text, text, timestamptz, timestamptz, text, integer, bigint,
    text, integer, jsonb
) IS 'sha256 of a canonical binary serialisation of one trail row (every column but the '
    'hashes); row_hash = sha256(prev_hash || row_digest(...)).';

-- The chain as a running aggregate: `audit.chain_link(head, digest) OVER (ORDER BY seq)`
-- gives each new row its row_hash, starting from `head`, the newest recorded row_hash.
-- The writer links a whole batch in its INSERT with it. PL/pgSQL: a SQL-language step is
-- not inlined into an aggregate and costs more per row (measured).
CREATE FUNCTION audit.chain_step(state bytea, head bytea, digest bytea) RETURNS bytea
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
AS $step$
BEGIN
    RETURN sha256(coalesce(state, head) || digest);
END
$step$;

COMMENT ON FUNCTION audit.chain_step(bytea, bytea, bytea) IS
    'Transition of audit.chain_link: sha256(previous row_hash || digest), the first '
    'previous row_hash being head.';

CREATE AGGREGATE audit.chain_link(head bytea, digest bytea) (
    SFUNC = audit.chain_step,
    STYPE = bytea
);

COMMENT ON AGGREGATE audit.chain_link(bytea, bytea) IS
    'Running hash chain: as a window over rows ordered by seq, each row''s row_hash.';

ALTER TABLE audit.trail_events
    ADD COLUMN prev_hash bytea,
    ADD COLUMN row_hash bytea;

-- Rows recorded before this migration join the chain in seq order. Changing them needs the
-- append-only trigger off, for this transaction only; it is back on before anyone else can
-- see the table.
ALTER TABLE audit.trail_events DISABLE TRIGGER trail_events_append_only;

DO $backfill$
DECLARE
    previous bytea := decode(repeat('00', 32), 'hex');
    current_row record;
BEGIN
    FOR current_row IN
        SELECT e.seq, audit.row_digest(
            e.seq, e.event_id, e.event_type, e.ticket_id, e.trace_id, e.causation_id,
            e.occurred_at, e.recorded_at, e.topic, e.partition, e.kafka_offset,
            e.producer_service, e.schema_version, e.payload
        ) AS digest
        FROM audit.trail_events AS e
        ORDER BY e.seq
    LOOP
        UPDATE audit.trail_events
        SET prev_hash = previous, row_hash = sha256(previous || current_row.digest)
        WHERE seq = current_row.seq;
        previous := sha256(previous || current_row.digest);
    END LOOP;
END
$backfill$;

ALTER TABLE audit.trail_events ENABLE TRIGGER trail_events_append_only;

ALTER TABLE audit.trail_events
    ALTER COLUMN prev_hash SET NOT NULL,
    ALTER COLUMN row_hash SET NOT NULL,
    ADD CONSTRAINT trail_events_hash_sizes CHECK (
        octet_length(prev_hash) = 32 AND octet_length(row_hash) = 32
    );

COMMENT ON COLUMN audit.trail_events.prev_hash IS
    'row_hash of the previous row by seq (32 zero bytes for the first): the chain link.';
COMMENT ON COLUMN audit.trail_events.row_hash IS
    'sha256(prev_hash || audit.row_digest(this row)); verify with `triageflow audit verify`.';

REVOKE ALL ON FUNCTION audit.chain_step(bytea, bytea, bytea) FROM PUBLIC;
REVOKE ALL ON FUNCTION audit.chain_link(bytea, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.chain_link(bytea, bytea) TO triageflow_audit_writer;
REVOKE ALL ON FUNCTION audit.digest_text(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.digest_text(text)
    TO triageflow_audit_writer, triageflow_audit_reader;
REVOKE ALL ON FUNCTION audit.row_digest(
    bigint, text, text, text, text, text, timestamptz, timestamptz, text, integer, bigint,
    text, integer, jsonb
) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION audit.row_digest(
    bigint, text, text, text, text, text, timestamptz, timestamptz, text, integer, bigint,
    text, integer, jsonb
) TO triageflow_audit_writer, triageflow_audit_reader;

RESET ROLE;
