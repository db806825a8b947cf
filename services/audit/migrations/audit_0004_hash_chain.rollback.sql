-- Undo audit_0004_hash_chain: the trail keeps every row; only the chain is dropped, and
-- with it the tamper evidence. Dropping columns is not an UPDATE: the append-only trigger
-- does not fire.

SET LOCAL ROLE triageflow_audit_owner;

ALTER TABLE audit.trail_events
    DROP CONSTRAINT trail_events_hash_sizes,
    DROP COLUMN row_hash,
    DROP COLUMN prev_hash;

DROP FUNCTION audit.row_digest(
    bigint, text, text, text, text, text, timestamptz, timestamptz, text, integer, bigint,
    text, integer, jsonb
);
DROP FUNCTION audit.digest_text(text);
DROP AGGREGATE audit.chain_link(bytea, bytea);
DROP FUNCTION audit.chain_step(bytea, bytea, bytea);

RESET ROLE;
