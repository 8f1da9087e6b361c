"""Persistence: the file store (bytes on disk) and the index (the database). Neither knows
the other; the ingest pipeline and the resource service combine them."""
