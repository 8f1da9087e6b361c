"""Configuration: Orthanc's keys, comments, unknown keys, clear errors, relative paths."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from dicomd.config import Config, load_config, strip_json_comments
from dicomd.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conf.json"
    path.write_text(text)
    return path


def test_embedded_defaults_match_orthanc(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None)
    assert config.http_port == 8042
    assert config.bind_address == "127.0.0.1"
    assert config.storage_directory == tmp_path / "dicomd-data"
    assert config.index_directory == config.storage_directory
    assert config.storage_compression is False
    assert config.overwrite_instances is False
    assert config.store_md5_for_attachments is True
    assert config.http_describe_errors is True
    assert config.authentication_enabled is False


def test_comments_and_relative_paths(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """{
      // a line comment with "quotes"
      "Name" : "Test // not a comment",   /* block
      comment */ "StorageDirectory" : "store",
      "IndexDirectory": "/tmp/abs-index",
      "HttpPort": 9000
    }""",
    )
    config = load_config(path)
    assert config.name == "Test // not a comment"
    assert config.storage_directory == tmp_path / "store"
    assert config.index_directory == Path("/tmp/abs-index")
    assert config.http_port == 9000


def test_unknown_keys_are_logged_and_ignored(tmp_path: Path, caplog) -> None:
    path = write(tmp_path, '{"DicomAet": "ORTHANC", "Typo": 1, "HttpPort": 8043}')
    with caplog.at_level(logging.INFO, logger="dicomd.config"):
        config = load_config(path)
    assert config.http_port == 8043
    assert "Typo" in caplog.text and "DicomAet" in caplog.text


@pytest.mark.parametrize(
    "text, key",
    [
        ('{"HttpPort": "8042"}', "HttpPort"),
        ('{"HttpPort": 70000}', "HttpPort"),
        ('{"StorageCompression": "yes"}', "StorageCompression"),
        ('{"RegisteredUsers": {"alice": 1}}', "RegisteredUsers"),
        ('{"OverwriteInstances": "Sometimes"}', "OverwriteInstances"),
        ('{"StorageDirectory": 3}', "StorageDirectory"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        load_config(write(tmp_path, text))


def test_invalid_json_says_where(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="line 3"):
        load_config(write(tmp_path, '{\n "Name": "x",\n "HttpPort": }'))


def test_remote_access_switches_authentication_on(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, '{"RemoteAccessAllowed": true, "RegisteredUsers": {"a": "b"}}')
    )
    assert config.authentication_enabled is True
    assert config.bind_address == "0.0.0.0"
    explicit = load_config(
        write(tmp_path, '{"RemoteAccessAllowed": true, "AuthenticationEnabled": false}')
    )
    assert explicit.authentication_enabled is False


def test_strip_comments_keeps_strings() -> None:
    assert strip_json_comments('{"a": "http://x/*y*/"} // c').strip() == '{"a": "http://x/*y*/"}'


def test_check_config_command(tmp_path: Path) -> None:
    good = write(tmp_path, '{"HttpPort": 8050}')
    run = subprocess.run(
        [sys.executable, "-m", "dicomd", "check-config", str(good)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"StableAge": "soon"}')
    run = subprocess.run(
        [sys.executable, "-m", "dicomd", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "StableAge" in run.stderr


def test_sample_config_is_valid() -> None:
    sample = Path(__file__).parent.parent / "sample-config" / "dicomd.json"
    config = load_config(sample)
    assert isinstance(config, Config)
