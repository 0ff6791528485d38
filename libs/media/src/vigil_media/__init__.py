"""Video work on Vigil footage: privacy masks, joins, de-identification and signed evidence manifests."""
