"""ruff and mypy are part of the test command, so CI runs them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "daemon", "tests", "benchmarks", "scripts"],
        ["ruff", "format", "--check", "daemon", "tests", "benchmarks", "scripts"],
        ["mypy"],
    ],
)
def test_static_checks(command: list[str]) -> None:
    tool = shutil.which(command[0], path=str(Path(sys.executable).parent)) or shutil.which(
        command[0]
    )
    assert tool, f"{command[0]} is not installed (pip install -e '.[test]')"
    paths = ("daemon", "tests", "benchmarks", "scripts")
    args = [a for a in command[1:] if a not in paths or (ROOT / a).exists()]
    run = subprocess.run([tool, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
