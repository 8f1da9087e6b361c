"""The /tools routes that read or change run-time settings, /exports, /plugins, and the
request rules every Orthanc client meets first: faked methods, 405 answers, XML answers."""

from __future__ import annotations

import logging
from xml.dom import minidom

import pytest

from dicomfactory import make_dataset, to_bytes


def _latin_file(raw_name: bytes, charset: str | None = None) -> bytes:
    """A file whose PatientName is ``raw_name`` exactly, without SpecificCharacterSet
    unless ``charset`` is given."""
    ds = make_dataset(patient_id="ENC")
    del ds.SpecificCharacterSet
    if charset:
        ds.SpecificCharacterSet = charset
    ds.PatientName = raw_name.decode("latin_1")  # written back as these very bytes
    return to_bytes(ds)


def test_tools_lists_its_routes(client) -> None:
    listing = client.get("/tools").json()
    for name in (
        "now",
        "now-local",
        "generate-uid",
        "default-encoding",
        "dicom-conformance",
        "accepted-transfer-syntaxes",
        "unknown-sop-class-accepted",
        "log-level",
        "log-level-http",
        "metrics",
        "execute-script",
    ):
        assert name in listing
    assert listing == sorted(listing)
    assert client.get("/tools/nope").status_code == 404


def test_default_encoding_decodes_files_without_a_character_set(client) -> None:
    assert client.get("/tools/default-encoding").text == "Latin1"
    cyrillic = "Иванов".encode("cp1251")
    data = _latin_file(cyrillic)
    first = client.post("/instances", data=data).json()
    tags = client.get(f"/instances/{first['ID']}/simplified-tags").json()
    assert tags["PatientName"] == cyrillic.decode("latin_1")

    r = client.put("/tools/default-encoding", data="Windows1251")
    assert (r.status_code, r.text) == (200, "Windows1251")
    assert client.get("/tools/default-encoding").text == "Windows1251"
    assert client.get(f"/instances/{first['ID']}/simplified-tags").json()["PatientName"] == (
        "Иванов"
    )
    # The main tags were decoded when the file arrived: stored again, it reads in Cyrillic.
    client.delete(f"/instances/{first['ID']}")
    again = client.post("/instances", data=data).json()
    patient = client.get(f"/patients/{again['ParentPatient']}").json()
    assert patient["MainDicomTags"]["PatientName"] == "Иванов"
    # A file that names its character set is decoded with it, whatever the default.
    latin = _latin_file("Müller".encode("latin_1"), charset="ISO_IR 100")
    other = client.post("/instances", data=latin).json()
    assert client.get(f"/instances/{other['ID']}/simplified-tags").json()["PatientName"] == (
        "Müller"
    )


def test_default_encoding_refuses_unknown_names(client) -> None:
    r = client.put("/tools/default-encoding", data="nope")
    assert r.status_code == 400
    assert r.json()["OrthancError"] == "Parameter out of range"
    assert client.get("/tools/default-encoding").text == "Latin1"


def test_accepted_transfer_syntaxes(client) -> None:
    every = client.get("/tools/accepted-transfer-syntaxes").json()
    assert "1.2.840.10008.1.2" in every and "1.2.840.10008.1.2.4.50" in every
    assert len(every) == 42
    r = client.put(
        "/tools/accepted-transfer-syntaxes", json=["1.2.840.10008.1.2.4.5?", "1.2.840.10008.1.2"]
    )
    assert r.json() == ["1.2.840.10008.1.2"] + [f"1.2.840.10008.1.2.4.{n}" for n in range(50, 60)]
    assert client.get("/tools/accepted-transfer-syntaxes").json() == r.json()
    # One UID as plain text (which Orthanc refuses), a pattern, or one that matches nothing.
    plain = client.put("/tools/accepted-transfer-syntaxes", data="1.2.840.10008.1.2.1")
    assert plain.json() == ["1.2.840.10008.1.2.1"]
    assert client.put("/tools/accepted-transfer-syntaxes", data="nope").json() == []
    assert client.put("/tools/accepted-transfer-syntaxes", data="*").json() == every
    bad = client.put("/tools/accepted-transfer-syntaxes", json={"a": 1})
    assert bad.status_code == 400 and bad.json()["OrthancError"] == "Bad file format"


def test_accepted_transfer_syntaxes_start_from_the_configuration(make_daemon) -> None:
    _daemon, client = make_daemon(AcceptedTransferSyntaxes=["1.2.840.10008.1.2.1*"])
    assert client.get("/tools/accepted-transfer-syntaxes").json() == [
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.1.99",
    ]


def test_unknown_sop_class_and_metrics_flags(client) -> None:
    assert client.get("/tools/unknown-sop-class-accepted").text == "0"
    assert client.put("/tools/unknown-sop-class-accepted", data="1").text == ""
    assert client.get("/tools/unknown-sop-class-accepted").text == "1"
    r = client.put("/tools/unknown-sop-class-accepted", data="maybe")
    assert r.status_code == 400 and r.json()["Details"] == "Boolean value expected"
    assert client.get("/tools/metrics").text == "1"
    client.put("/tools/metrics", data="false")
    assert client.get("/tools/metrics").text == "0"


def test_log_levels(client) -> None:
    logger = logging.getLogger("dicomd.rest")
    assert client.get("/tools/log-level").text in ("default", "verbose")
    assert client.put("/tools/log-level", data="verbose").status_code == 200
    assert client.get("/tools/log-level").text == "verbose"
    assert client.get("/tools/log-level-http").text == "verbose"
    assert logger.getEffectiveLevel() == logging.DEBUG
    client.put("/tools/log-level-http", data="default")
    assert client.get("/tools/log-level-http").text == "default"
    assert client.get("/tools/log-level-lua").text == "verbose"
    assert logger.getEffectiveLevel() == logging.INFO
    r = client.put("/tools/log-level", data="nope")
    assert r.status_code == 400 and "Verbosity" in r.json()["Details"]
    assert client.get("/tools/log-level-nope").status_code == 404
    client.put("/tools/log-level", data="default")


def test_settings_are_forgotten_at_restart(tmp_path) -> None:
    from dicomd.app import Daemon
    from dicomd.config import load_config

    from conftest import write_config

    config = load_config(write_config(tmp_path, HttpProcesses=1))
    for expected in ("Latin1", "Latin1"):
        daemon = Daemon(config)
        daemon.start()
        try:
            import requests

            base = f"http://127.0.0.1:{daemon.http_port}"
            assert requests.get(f"{base}/tools/default-encoding").text == expected
            requests.put(f"{base}/tools/default-encoding", data="Utf8")
            assert requests.get(f"{base}/tools/default-encoding").text == "Utf8"
        finally:
            daemon.stop()


def test_settings_are_shared_by_the_http_processes(make_daemon) -> None:
    _daemon, client = make_daemon(HttpProcesses=2)
    client.put("/tools/default-encoding", data="Greek")
    client.put("/tools/accepted-transfer-syntaxes", data="1.2.840.10008.1.2")
    # Every new connection may land on either process: all of them see the change.
    for _ in range(12):
        client.close()
        assert client.get("/tools/default-encoding").text == "Greek"
        assert client.get("/tools/accepted-transfer-syntaxes").json() == ["1.2.840.10008.1.2"]


def test_dicom_conformance_and_plugins(client) -> None:
    statement = client.get("/tools/dicom-conformance")
    assert statement.headers["Content-Type"].startswith("text/plain")
    assert "1.2.840.10008.1.2.4.50" in statement.text  # the transfer syntaxes are listed
    assert client.get("/plugins").json() == []
    js = client.get("/plugins/explorer.js")
    assert js.headers["Content-Type"] == "application/javascript"


def test_faked_methods(client) -> None:
    client.put("/tools/default-encoding", data="Utf8")
    r = client.post(
        "/tools/default-encoding", data="Ascii", headers={"X-HTTP-Method-Override": "put"}
    )
    assert r.text == "Ascii"
    r = client.get("/tools/default-encoding?_method=PUT", data="Latin2")
    assert r.text == "Latin2"
    # ?_method is only read on a GET; a POST to this URI is not allowed.
    assert client.post("/tools/default-encoding?_method=PUT", data="Utf8").status_code == 405
    for method in ("GET", "PATCH"):
        r = client.post("/tools/default-encoding", headers={"X-HTTP-Method-Override": method})
        assert (r.status_code, r.content) == (400, b"")
    assert client.get("/tools/default-encoding").text == "Latin2"


def test_method_not_allowed_has_no_body(client) -> None:
    for method, uri, allow in (
        ("PUT", "/instances", "GET,POST"),
        ("POST", "/system", "GET"),
        ("DELETE", "/tools/now", "GET"),
        ("POST", "/tools/default-encoding", "GET,PUT"),
    ):
        r = client.request(method, uri)
        assert r.status_code == 405, uri
        assert r.content == b"" and "Content-Type" not in r.headers
        assert r.headers["Allow"] == allow


def test_json_answers_as_xml(client) -> None:
    as_json = client.get("/tools", headers={"Accept": "application/json"}).json()
    r = client.get("/tools", headers={"Accept": "application/xml"})
    assert r.headers["Content-Type"].startswith("application/xml")
    items = minidom.parseString(r.content).getElementsByTagName("root")[0]
    names = [node.childNodes[0].data for node in items.getElementsByTagName("item")]
    assert names == as_json
    system = client.get("/system", headers={"Accept": "application/xml"}).content
    root = minidom.parseString(system).documentElement
    assert root.getElementsByTagName("Version")[0].childNodes[0].data == "1.10.1"


@pytest.fixture
def exporting(make_daemon):
    _b, target = make_daemon()
    daemon, client = make_daemon(LogExportedResources=True, OrthancPeers={"b": [target.base_url]})
    return daemon, client, target


def test_exports_log_one_entry_per_resource_sent(exporting) -> None:
    _daemon, client, target = exporting
    empty = client.get("/exports").json()
    assert empty == {"Done": True, "Exports": [], "Last": 0}
    assert client.get("/exports?last").json() == empty
    ds = make_dataset(patient_id="EXP", patient_name="Export^Me")
    stored = client.post("/instances", data=to_bytes(ds)).json()
    for level in ("Instance", "Series", "Study", "Patient"):
        resource = stored["ID"] if level == "Instance" else stored[f"Parent{level}"]
        assert client.post("/peers/b/store", data=resource).status_code == 200
    assert len(target.get("/instances").json()) == 1
    log = client.get("/exports").json()
    assert log["Done"] is True and log["Last"] == log["Exports"][-1]["Seq"]
    first, series, study, patient = log["Exports"]
    assert first["ResourceType"] == "Instance" and first["RemoteModality"] == "b"
    assert first["Path"] == f"/instances/{stored['ID']}"
    assert first["SOPInstanceUID"] == ds.SOPInstanceUID
    assert first["SeriesInstanceUID"] == ds.SeriesInstanceUID
    assert first["StudyInstanceUID"] == ds.StudyInstanceUID
    assert first["PatientID"] == "EXP" and len(first) == 10
    assert len(series) == 9 and "SOPInstanceUID" not in series
    assert len(study) == 8 and study["ID"] == stored["ParentStudy"]
    assert len(patient) == 7 and patient["PatientID"] == "EXP"
    page = client.get(f"/exports?limit=1&since={first['Seq']}").json()
    assert [e["ID"] for e in page["Exports"]] == [series["ID"]] and page["Done"] is False
    assert client.get("/exports?last").json()["Exports"] == [patient]
    assert client.delete("/exports").status_code == 200
    assert client.get("/exports").json()["Exports"] == []


def test_exports_are_not_logged_by_default(make_daemon) -> None:
    _b, target = make_daemon()
    _a, client = make_daemon(OrthancPeers={"b": [target.base_url]})
    stored = client.post("/instances", data=to_bytes(make_dataset())).json()
    client.post("/peers/b/store", data=stored["ID"])
    assert client.get("/exports").json()["Exports"] == []


def test_bodies_read_whole_have_a_size_limit(make_daemon) -> None:
    import socket

    _daemon, client = make_daemon(HttpMaximumBodySize=1)
    stored = client.post("/instances", data=to_bytes(make_dataset())).json()
    uri = f"/instances/{stored['ID']}/metadata/1024"
    assert client.put(uri, data=b"x" * (1024 * 1024)).status_code == 200
    r = client.put(uri, data=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413 and r.json()["HttpStatus"] == 413
    assert client.get(uri).content == b"x" * (1024 * 1024)  # the first value stays
    # Refused on its declared length alone: the body is never read.
    host, port = client.base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"PUT {uri} HTTP/1.1\r\nHost: x\r\nContent-Length: 4294967296\r\n\r\n".encode()
        )
        answer = sock.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413") and "Connection: close" in answer

    # A chunked body over the limit is refused too.
    def chunks():
        for _ in range(3):
            yield b"y" * (512 * 1024)

    assert client.put(uri, data=chunks()).status_code == 413
    # Uploads and attachments are not counted.
    big = make_dataset(rows=1024, cols=1024)
    assert client.post("/instances", data=to_bytes(big)).status_code == 200
    assert (
        client.put(
            f"/instances/{stored['ID']}/attachments/1025", data=b"z" * (2 * 1024 * 1024)
        ).status_code
        == 200
    )


def test_shutdown_stops_the_daemon(daemon_process) -> None:
    proc = daemon_process(HttpProcesses=2).start()
    client = proc.client()
    r = client.post("/tools/shutdown")
    assert (r.status_code, r.json()) == (200, {})
    assert proc.proc is not None and proc.proc.wait(timeout=20) == 0


def test_reset_starts_again_with_the_configuration_read_anew(daemon_process) -> None:
    import json
    import time

    proc = daemon_process(HttpProcesses=1, Name="before").start()
    client = proc.client()
    client.put("/tools/default-encoding", data="Utf8")
    settings = json.loads(proc.config_path.read_text())
    proc.config_path.write_text(json.dumps({**settings, "Name": "after"}))
    assert client.post("/tools/reset").json() == {}
    deadline = time.monotonic() + 30
    name = None
    while time.monotonic() < deadline and name != "after":
        try:
            name = client.get("/system", timeout=1).json()["Name"]
        except Exception:
            time.sleep(0.1)
    assert name == "after"
    assert proc.proc is not None and proc.proc.poll() is None  # the same process
    assert client.get("/tools/default-encoding").text == "Latin1"  # settings forgotten


def test_modalities_of_the_configuration_are_listed(make_daemon) -> None:
    _daemon, client = make_daemon(
        DicomModalities={"pacs": ["PACS", "127.0.0.1", 104], "ct": {"AET": "CT", "Port": 11112}}
    )
    assert client.get("/modalities").json() == ["ct", "pacs"]
    expanded = client.get("/modalities?expand").json()
    assert expanded["pacs"] == {
        "AET": "PACS",
        "Host": "127.0.0.1",
        "Port": 104,
        "Manufacturer": "Generic",
    }
    assert expanded["ct"]["AET"] == "CT"
