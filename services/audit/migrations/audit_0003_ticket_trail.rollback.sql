-- Undo audit_0003_ticket_trail: the view and its helper hold no data.
DROP VIEW audit.ticket_trail;
DROP FUNCTION audit.event_summary(text, jsonb);
