"""The audit trail (hash-chained AuditEvents) and the Provenance attached to every write."""
