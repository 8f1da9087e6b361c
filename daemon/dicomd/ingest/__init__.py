"""The one ingest pipeline: parse -> store -> index -> (events after commit). Every source of
instances (REST uploads, hot folders, scripts) calls :class:`IngestPipeline`; the hot
folders (``hotfolders``, ``inbox``) and the ``dicomd import`` client (``importer``) live here
too."""

from .pipeline import IngestPipeline, IngestResult

__all__ = ["IngestPipeline", "IngestResult"]
