-- Cluster-wide group roles of the audit trail (created once, shared by every database).
--
-- Roles belong to the cluster, not to a database, so the many databases of one cluster
-- (per-test databases, tenants) share these names: each is created only if missing, and
-- a concurrent migration that creates it first is not an error. Privileges on objects are
-- granted per database by the following migrations. No rollback file on purpose: other
-- databases of the cluster may still use these roles.
--
--   triageflow_audit_owner   owns schema `audit` and everything in it (NOLOGIN)
--   triageflow_audit_writer  INSERT + SELECT on the trail; grant it to the service's login
--   triageflow_audit_reader  SELECT only; grant it to people and reporting tools
--
-- The role running the migrations needs CREATEROLE and becomes a member of the owner role
-- so that it can create objects owned by it.

DO $roles$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY[
        'triageflow_audit_owner', 'triageflow_audit_writer', 'triageflow_audit_reader'
    ] LOOP
        IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', role_name);
            EXCEPTION
                -- Another database's migration created it between our check and now.
                WHEN duplicate_object OR unique_violation THEN NULL;
            END;
        END IF;
    END LOOP;
END
$roles$;

-- Idempotent: re-granting an existing membership is only a NOTICE.
GRANT triageflow_audit_owner TO CURRENT_USER;

COMMENT ON ROLE triageflow_audit_owner IS
    'Owns schema audit (migrations only). NOLOGIN: nobody works as the owner.';
COMMENT ON ROLE triageflow_audit_writer IS
    'Audit consumer: INSERT and SELECT on audit.trail_events, never UPDATE/DELETE/TRUNCATE.';
COMMENT ON ROLE triageflow_audit_reader IS
    'Read-only access to the audit trail (audit.trail_events, audit.ticket_trail).';
