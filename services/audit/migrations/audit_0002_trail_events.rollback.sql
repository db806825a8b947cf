-- Undo audit_0002_trail_events, but only while the trail is empty: rolling back must
-- never be a way to delete recorded decisions.

DO $guard$
BEGIN
    IF EXISTS (SELECT FROM audit.trail_events) THEN
        RAISE EXCEPTION 'audit.trail_events is not empty; refusing to drop the audit trail'
            USING ERRCODE = 'object_in_use';
    END IF;
END
$guard$;

DROP SCHEMA audit CASCADE;

DO $temp$
BEGIN
    EXECUTE format(
        'REVOKE TEMPORARY ON DATABASE %I FROM triageflow_audit_writer', current_database()
    );
END
$temp$;
