"""The documentation agrees with the code: every configuration key and endpoint is documented."""

from __future__ import annotations

import re
from pathlib import Path

from dicomd.config import IMPLEMENTED_KEYS

DOCS = Path(__file__).parent.parent / "docs"


def test_every_config_key_is_documented() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE))
    assert documented == set(IMPLEMENTED_KEYS)


def test_every_endpoint_is_documented(daemon_client) -> None:
    daemon, _client = daemon_client
    from dicomd.rest.application import create_app

    app = create_app(daemon.services)
    text = (DOCS / "rest-api.md").read_text()
    documented = set(
        re.findall(
            r"^#+ `(?:GET|POST|PUT|DELETE)(?: (?:GET|POST|PUT|DELETE))* "
            r"([^`]+)`",
            text,
            re.MULTILINE,
        )
    )
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(
            r"<any\(([^)]*)\):\w+>", lambda m: "{" + m.group(1).replace(", ", "|") + "}", rule.rule
        )
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", path)
        if path not in documented:
            missing.append(path)
    assert not missing, missing


def test_the_plugin_examples_are_the_sample_tests() -> None:
    """The worked examples of testing-your-scripts.md are real code that runs: each stands,
    to the letter, in a file of scripts/ (the sample rules and their tests)."""
    text = (DOCS / "testing-your-scripts.md").read_text()
    blocks = re.findall(r"^```(?:python|lua)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
    files = [
        p.read_text() for p in (DOCS.parent / "scripts").rglob("*") if p.suffix in (".py", ".lua")
    ]
    assert blocks
    assert [b for b in blocks if not any(b in f for f in files)] == []
