"""The data half: ingestion, deduplication, label checks, splits, validation and the steps that version them."""
