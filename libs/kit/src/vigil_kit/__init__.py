"""vigil_kit: the plumbing every Vigil service shares (settings, logging, metrics, gRPC, auth,
Kafka with CloudEvents, the transactional outbox, idempotent consumers, SQL, S3, benchmarks)."""
