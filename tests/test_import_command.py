"""``dicomd import`` against a real dicomd on a loopback port."""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomd.app import Daemon
from dicomd.cli import main
from dicomd.ingest.importer import Server, run_import

from conftest import Client, free_port
from dicomfactory import make_dicom, make_series

MakeDaemon = Callable[..., tuple[Daemon, Client]]


def make_tree(root: Path) -> list[bytes]:
    """4 DICOM files (2 in sub-folders), a ZIP of 3 more, one garbage file, one hidden."""
    series = make_series(7)
    (root / "a" / "b").mkdir(parents=True)
    (root / "one.dcm").write_bytes(series[0])
    (root / "a" / "two.dcm").write_bytes(series[1])
    (root / "a" / "b" / "three").write_bytes(series[2])
    (root / "a" / "b" / "four.DCM").write_bytes(series[3])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, data in enumerate(series[4:]):
            archive.writestr(f"z/{i}.dcm", data)
    (root / "a" / "more.zip").write_bytes(buffer.getvalue())
    (root / "notes.txt").write_text("not DICOM")
    (root / ".hidden.dcm").write_bytes(make_dicom())
    return series


def test_import_uploads_a_tree_and_sums_up(
    make_daemon: MakeDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _daemon, client = make_daemon()
    tree = tmp_path / "tree"
    series = make_tree(tree)
    url = client.base_url
    status = main(["import", str(tree), "--url", url, "--concurrency", "3"])
    captured = capsys.readouterr()
    assert status == 1, captured  # notes.txt failed
    assert "7 instance(s) stored, 0 already stored, 1 file(s) failed" in captured.out
    assert "notes.txt" in captured.err
    assert captured.out.startswith("6 file(s) in")  # the hidden file was not taken
    stored = {client.get(f"/instances/{i}/file").content for i in client.get("/instances").json()}
    assert stored == set(series)

    status = main(["import", str(tree / "a"), str(tree / "one.dcm"), "--url", url])
    captured = capsys.readouterr()
    assert status == 0, captured
    assert captured.out.startswith("5 file(s) in")
    assert "0 instance(s) stored, 7 already stored, 0 file(s) failed" in captured.out


def test_import_with_credentials(
    make_daemon: MakeDaemon, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _daemon, client = make_daemon(AuthenticationEnabled=True, RegisteredUsers={"alice": "pw"})
    (tmp_path / "x.dcm").write_bytes(make_dicom())
    assert main(["import", str(tmp_path / "x.dcm"), "--url", client.base_url]) == 2
    assert "401" in capsys.readouterr().err
    args = ["import", str(tmp_path / "x.dcm"), "--url", client.base_url, "--user", "alice"]
    assert main([*args, "--password", "pw"]) == 0
    assert "1 instance(s) stored" in capsys.readouterr().out


def test_import_says_why_it_cannot_start(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    err = io.StringIO()
    with pytest.raises(Exception, match="cannot reach"):
        run_import([tmp_path], Server(url), out=io.StringIO(), err=err)
    run = subprocess.run(
        [sys.executable, "-m", "dicomd", "import", str(tmp_path / "missing"), "--url", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert "no such file or folder" in run.stderr


def test_progress_lines_when_not_a_terminal(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    _daemon, client = make_daemon()
    folder = tmp_path / "files"
    folder.mkdir()
    for i, data in enumerate(make_series(5)):
        (folder / f"{i}.dcm").write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    assert run_import([folder], Server(client.base_url), 2, out, err) == 0
    assert "uploading 5 file(s)" in err.getvalue()
    assert "\r" not in err.getvalue()
    assert "5 instance(s) stored" in out.getvalue()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    _daemon, client = make_daemon()
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "x.dcm").write_bytes(make_dicom())
    err = Terminal()
    assert run_import([tmp_path / "files"], Server(client.base_url), 1, io.StringIO(), err) == 0
    assert "\r[########################] 1/1 files 100%" in err.getvalue()
