"""Orthanc peers: their definitions, the HTTP client that sends to them, and the durable
jobs that forward instances with retries."""
