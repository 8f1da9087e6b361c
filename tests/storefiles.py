"""What the file store holds on disk, as the tests see it."""

from __future__ import annotations

from pathlib import Path


def stored_files(storage: Path) -> list[Path]:
    """Every stored attachment file (the write journal is bookkeeping, not content)."""
    return sorted(p for p in storage.rglob("*") if p.is_file() and ".journal" not in p.parts)
