"""vigil_audit: the tamper-evident audit log every service's audit records land in."""
