"""dicomd: a scriptable DICOM automation daemon with an Orthanc-compatible REST API."""

__version__ = "0.1.0"
