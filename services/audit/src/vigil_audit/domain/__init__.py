"""The audit log's pure core (AUD-1): Merkle tree, canonical leaves, signed tree heads, export verification.

No transport, protobuf or SQL here: the service adapts records and storage to these functions.
"""
