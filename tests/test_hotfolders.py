"""Hot folders on real folders, with the real inotify observer and the polling one."""

from __future__ import annotations

import io
import re
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dicomd.app import Daemon
from dicomd.config import HotFolder, build_config, load_config
from dicomd.domain.model import Level, Metadata
from dicomd.errors import ConfigError
from dicomd.ingest.hotfolders import FolderWatcher, SettleTracker

from conftest import Client
from dicomfactory import make_dicom, make_series

MakeDaemon = Callable[..., tuple[Daemon, Client]]


def wait_until(check: Callable[[], Any], timeout: float = 20, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}")


def files_under(folder: Path) -> list[str]:
    """Relative paths of every file under ``folder``, sorted."""
    if not folder.exists():
        return []
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def instance_count(daemon: Daemon) -> int:
    return daemon.index.totals().instances


def hot_daemon(make_daemon: MakeDaemon, tmp_path: Path, **options: Any) -> tuple[Daemon, Path]:
    inbox = tmp_path / "inbox"
    daemon, _client = make_daemon(HotFolders=[{"Path": str(inbox), **options}])
    return daemon, inbox


def drained(daemon: Daemon, inbox: Path, instances: int) -> Callable[[], bool]:
    return lambda: not files_under(inbox) and instance_count(daemon) == instances


@pytest.fixture(params=[False, True], ids=["inotify", "polling"])
def polling(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def test_files_present_at_start_are_imported_with_origin_hotfolder(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    series = make_series(3)
    for i, data in enumerate(series):
        (inbox / ("sub" if i else ".") / f"f{i}.dcm").write_bytes(data)
    daemon, client = make_daemon(HotFolders=[{"Path": str(inbox), "SettleSeconds": 0.2}])
    wait_until(drained(daemon, inbox, 3), what="the inbox to drain")
    for instance_id in client.get("/instances").json():
        resource = daemon.index.get(Level.INSTANCE, instance_id)
        assert resource is not None
        assert daemon.index.metadata(resource)[Metadata.Origin] == "HotFolder"
    assert sorted(
        client.get(f"/instances/{i}/file").content for i in client.get("/instances").json()
    ) == sorted(series)


def test_slow_writer_is_imported_once_complete(
    make_daemon: MakeDaemon, tmp_path: Path, polling: bool
) -> None:
    daemon, inbox = hot_daemon(make_daemon, tmp_path, Polling=polling, SettleSeconds=0.5)
    data = make_dicom(rows=64, cols=64)
    target = inbox / "slow.dcm"
    with open(target, "wb") as out:
        chunk = len(data) // 8 + 1
        for start in range(0, len(data), chunk):
            out.write(data[start : start + chunk])
            out.flush()
            time.sleep(0.25)  # 2 s in all, four times the quiet period
            assert instance_count(daemon) == 0
            assert target.exists()
    wait_until(drained(daemon, inbox, 1), what="the slow file to be imported")
    (instance_id,) = daemon.index.list_ids(Level.INSTANCE)
    assert daemon.resources.instance_file(instance_id) == data
    assert not files_under(tmp_path / "inbox-errors")


def test_temporary_names_wait_until_renamed(
    make_daemon: MakeDaemon, tmp_path: Path, polling: bool
) -> None:
    daemon, inbox = hot_daemon(make_daemon, tmp_path, Polling=polling, SettleSeconds=0.1)
    names = ["a.dcm.part", "b.tmp", ".c.dcm", "d.CRDOWNLOAD"]
    for name in names:
        (inbox / name).write_bytes(make_dicom())
    (inbox / ".hidden").mkdir()
    (inbox / ".hidden" / "e.dcm").write_bytes(make_dicom())
    time.sleep(1.5)
    assert instance_count(daemon) == 0
    assert files_under(inbox) == sorted([".hidden/e.dcm", *names])
    (inbox / "a.dcm.part").rename(inbox / "a.dcm")
    wait_until(lambda: instance_count(daemon) == 1, what="the renamed file")
    wait_until(lambda: "a.dcm" not in files_under(inbox))
    assert not files_under(tmp_path / "inbox-errors")


def test_bad_files_go_to_the_error_folder_with_their_reason_once(
    make_daemon: MakeDaemon, tmp_path: Path, polling: bool
) -> None:
    daemon, inbox = hot_daemon(make_daemon, tmp_path, Polling=polling, SettleSeconds=0.1)
    good = make_dicom()
    (inbox / "deep" / "er").mkdir(parents=True)
    (inbox / "garbage.dcm").write_bytes(b"this is not DICOM" * 20)
    (inbox / "deep" / "er" / "truncated.dcm").write_bytes(good[: len(good) // 3])
    (inbox / "empty.dcm").write_bytes(b"")
    (inbox / "good.dcm").write_bytes(good)
    errors = tmp_path / "inbox-errors"
    expected = [
        "deep/er/truncated.dcm",
        "deep/er/truncated.dcm.error.txt",
        "empty.dcm",
        "empty.dcm.error.txt",
        "garbage.dcm",
        "garbage.dcm.error.txt",
    ]
    wait_until(lambda: files_under(errors) == expected, what="the error folder")
    wait_until(drained(daemon, inbox, 1))
    assert "empty" in (errors / "empty.dcm.error.txt").read_text()
    assert "BadFileFormat" in (errors / "garbage.dcm.error.txt").read_text()
    assert (errors / "garbage.dcm").read_bytes() == b"this is not DICOM" * 20
    time.sleep(1.5)  # not retried: nothing new appears
    assert files_under(errors) == expected


def test_moves_keep_sub_folders_duplicates_succeed_and_names_never_clash(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    done = tmp_path / "done"
    daemon, inbox = hot_daemon(
        make_daemon, tmp_path, AfterImport="Move", DonePath=str(done), SettleSeconds=0.1
    )
    data = make_dicom()
    (inbox / "a" / "b").mkdir(parents=True)
    moved: list[str] = []
    for name in ("x.dcm", "x-1.dcm", "x-2.dcm"):
        (inbox / "a" / "b" / "x.dcm").write_bytes(data)  # the same instance each time
        moved = sorted([*moved, f"a/b/{name}"])
        wait_until(
            lambda m=moved: files_under(done) == m and not files_under(inbox),
            what=f"the move to {name}",
        )
    assert instance_count(daemon) == 1
    assert not files_under(tmp_path / "inbox-errors")
    assert all((done / name).read_bytes() == data for name in files_under(done))


def test_zip_is_imported_like_an_upload(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    daemon, inbox = hot_daemon(make_daemon, tmp_path, SettleSeconds=0.1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, data in enumerate(make_series(3)):
            archive.writestr(f"series/{i}.dcm", data)
        archive.writestr("DICOMDIR", b"skipped, as in an upload")
    (inbox / "study.zip").write_bytes(buffer.getvalue())
    wait_until(drained(daemon, inbox, 3), what="the ZIP to be imported")
    assert not files_under(tmp_path / "inbox-errors")


def test_zip_with_entries_that_are_not_dicom_is_kept_in_errors(
    make_daemon: MakeDaemon, tmp_path: Path
) -> None:
    daemon, inbox = hot_daemon(make_daemon, tmp_path, SettleSeconds=0.1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("one.dcm", make_dicom())
        archive.writestr("notes.txt", b"not DICOM")
    (inbox / "mixed.zip").write_bytes(buffer.getvalue())
    errors = tmp_path / "inbox-errors"
    wait_until(lambda: files_under(errors) == ["mixed.zip", "mixed.zip.error.txt"])
    assert instance_count(daemon) == 1
    assert "notes.txt" in (errors / "mixed.zip.error.txt").read_text()


def test_not_recursive_leaves_sub_folders_alone(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    daemon, inbox = hot_daemon(make_daemon, tmp_path, Recursive=False, SettleSeconds=0.1)
    (inbox / "sub").mkdir()
    (inbox / "sub" / "x.dcm").write_bytes(make_dicom())
    (inbox / "top.dcm").write_bytes(make_dicom())
    wait_until(lambda: files_under(inbox) == ["sub/x.dcm"] and instance_count(daemon) == 1)
    time.sleep(0.5)
    assert files_under(inbox) == ["sub/x.dcm"]


def test_a_thousand_files_copied_at_once(make_daemon: MakeDaemon, tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    staging.mkdir()
    for i, data in enumerate(make_series(1000, rows=8, cols=8)):
        (staging / f"{i:04}.dcm").write_bytes(data)
    daemon, inbox = hot_daemon(make_daemon, tmp_path, SettleSeconds=0.2)
    for path in staging.iterdir():
        path.rename(inbox / path.name)
    wait_until(drained(daemon, inbox, 1000), timeout=60, what="1,000 files")


def test_an_unwritable_error_folder_does_not_stop_the_watcher(
    make_daemon: MakeDaemon, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the error folder should be")
    daemon, inbox = hot_daemon(make_daemon, tmp_path, ErrorPath=str(blocked), SettleSeconds=0.1)
    (inbox / "bad.dcm").write_bytes(b"not DICOM")
    wait_until(lambda: "cannot move" in caplog.text, what="the error to be logged")
    (inbox / "good.dcm").write_bytes(make_dicom())
    wait_until(lambda: files_under(inbox) == ["bad.dcm"] and instance_count(daemon) == 1)
    time.sleep(1)
    assert caplog.text.count("cannot move") == 1  # not retried in a loop
    (inbox / "bad.dcm").write_bytes(b"still not DICOM")  # once changed, it is tried again
    wait_until(lambda: caplog.text.count("cannot move") == 2)


# --------------------------------------------------------------------------- configuration


def test_config_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = build_config({"HotFolders": [{"Path": "in"}, {"Path": "/abs/x"}]}, tmp_path)
    first, second = config.hot_folders
    assert first == HotFolder(
        path=tmp_path / "in",
        done_path=tmp_path / "in-done",
        error_path=tmp_path / "in-errors",
        recursive=True,
        after_import="Delete",
        polling=False,
        settle_seconds=1.0,
    )
    assert second.error_path == Path("/abs/x-errors")
    moved = build_config(
        {"HotFolders": [{"Path": "in", "AfterImport": "Move", "DonePath": "../d"}]}, tmp_path
    ).hot_folders[0]
    assert moved.done_path == tmp_path.parent / "d"
    assert build_config({}, tmp_path).hot_folders == ()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"Path": "in"}, '"HotFolders" must be a list'),
        ([{"Recursive": True}], '"HotFolders[0].Path" is required'),
        ([{"Path": "in", "AfterImport": "Keep"}], '"HotFolders[0].AfterImport"'),
        ([{"Path": "in", "Recursive": "yes"}], '"HotFolders[0].Recursive"'),
        ([{"Path": "in", "Polling": 1}], '"HotFolders[0].Polling"'),
        ([{"Path": "in", "SettleSeconds": -1}], '"HotFolders[0].SettleSeconds"'),
        ([{"Path": "in", "Afterimport": "Move"}], '"HotFolders[0].Afterimport"'),
        ([{"Path": "in", "ErrorPath": "in/errors"}], '"HotFolders[0].ErrorPath" must be outside'),
        ([{"Path": "in", "DonePath": "in"}], '"HotFolders[0].DonePath" must be outside'),
        ([{"Path": "in"}, {"Path": "in/sub"}], '"HotFolders[1].Path" overlaps'),
        (["in"], '"HotFolders[0]" must be an object'),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config({"HotFolders": value}, tmp_path)


def test_a_done_folder_inside_a_folder_that_is_not_recursive_is_fine(tmp_path: Path) -> None:
    config = {"HotFolders": [{"Path": "in", "Recursive": False, "DonePath": "in/done"}]}
    assert build_config(config, tmp_path).hot_folders[0].done_path == tmp_path / "in" / "done"


def test_sample_config_is_valid() -> None:
    sample = Path(__file__).parent.parent / "sample-config" / "hotfolders.json"
    config = load_config(sample)
    inbox, share = config.hot_folders
    assert inbox.path == sample.parent / "inbox"
    assert share.polling and share.after_import == "Move"


# --------------------------------------------------------------------------- crash safety


@pytest.mark.slow
def test_sigkill_during_a_batch_loses_no_file(daemon_process, tmp_path: Path) -> None:
    """Each file is stored (and gone from the inbox), or still in the inbox or errors."""
    inbox, errors = tmp_path / "inbox", tmp_path / "inbox-errors"
    inbox.mkdir()
    originals: dict[str, bytes] = {}
    for i, data in enumerate(make_series(1000, rows=8, cols=8)):
        name = f"s{i % 4}/{i:04}.dcm"
        (inbox / name).parent.mkdir(exist_ok=True)
        (inbox / name).write_bytes(data)
        originals[name] = data
    # Two processes, so the helper is there too: it must not watch the inbox.
    proc = daemon_process(HotFolders=[{"Path": str(inbox)}], HttpProcesses=2).start()
    client = proc.client()
    count = lambda: client.get("/statistics").json()["CountInstances"]  # noqa: E731
    wait_until(lambda: count() >= 100, what="the import to be under way")
    proc.kill()  # SIGKILL, in the middle of the batch

    left = set(files_under(inbox))
    assert left and len(left) < len(originals), "the kill came too late to test anything"
    proc.start()
    stored_before = set(client.get("/instances").json())
    assert not files_under(errors)
    for name in set(originals) - left:
        # gone from the inbox only once stored: its instance is there, byte-identical
        instance_id = sop_instance_id(originals[name])
        assert instance_id in stored_before
    wait_until(lambda: count() == len(originals) and not files_under(inbox), timeout=60)
    for instance_id in client.get("/instances").json()[:20]:
        assert client.get(f"/instances/{instance_id}/file").content in originals.values()
    log = proc.log_path.read_text()
    assert log.count("hot folder") and log.count(": watching (") == 2  # one per start


def sop_instance_id(data: bytes) -> str:
    from dicomd.ingest.parse import parse_instance

    return parse_instance(data).ids.instance


# --------------------------------------------------------------------------- settling


def test_settle_tracker_waits_for_a_quiet_period(tmp_path: Path) -> None:
    now = [100.0]
    tracker = SettleTracker(1.0, clock=lambda: now[0])
    path = tmp_path / "x.dcm"
    path.write_bytes(b"a")
    tracker.see(path)
    assert tracker.ready() == []
    now[0] += 1.0
    with open(path, "ab") as out:
        out.write(b"b")  # changed during the quiet period: wait again
    assert tracker.ready() == [] and path in tracker
    now[0] += 1.0
    assert tracker.ready() == [path] and path not in tracker


def test_a_late_close_event_does_not_take_a_new_file(tmp_path: Path) -> None:
    """The timer took the first x.dcm; its close event comes after a new, still empty x.dcm
    was created: the new file must settle, not be judged empty at once."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    folder = build_config({"HotFolders": [{"Path": str(inbox)}]}, tmp_path).hot_folders[0]
    watcher = FolderWatcher(folder, pipeline=None)  # type: ignore[arg-type]
    (inbox / "x.dcm").write_bytes(b"")
    watcher._handle("closed", inbox / "x.dcm", None)
    assert inbox / "x.dcm" in watcher._tracker  # settling, not dispatched
