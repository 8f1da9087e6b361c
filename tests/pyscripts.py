"""Helpers for the Python scripting tests: write script files, start a daemon running them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests


def write_script(folder: Path, name: str, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path


def results(client: requests.Session, path: str = "/test/results") -> Any:
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return answer.json()


def failures(client: requests.Session) -> list[dict[str, Any]]:
    answer = client.get("/events/failures").json()
    return answer if isinstance(answer, list) else answer.get("Failures", [])


Starter = Callable[..., Any]
