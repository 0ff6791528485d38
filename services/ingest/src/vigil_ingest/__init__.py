"""vigil_ingest: accepts signed video segments from cameras and gateways into object storage."""
