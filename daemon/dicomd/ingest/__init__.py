"""The one ingest pipeline: parse -> store -> index -> (events after commit). Every source of
instances (REST uploads, hot folders, scripts) calls :class:`IngestPipeline`."""

from .pipeline import IngestPipeline, IngestResult

__all__ = ["IngestPipeline", "IngestResult"]
