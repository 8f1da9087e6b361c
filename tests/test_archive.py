"""Archives and media on a real daemon: the ZIP opened with zipfile, the DICOMDIR read with
pydicom and dcmdump, Orthanc's names and errors, and a large archive streamed in bounded
memory.

The expected folder and file names are those Orthanc 1.10.1 gave for the same files
(recorded side by side: same resources, same requests)."""

from __future__ import annotations

import io
import shutil
import signal
import subprocess
import zipfile
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import generate_uid

from dicomd.domain.archive import folder_name, instance_name_format, keep_alphanumeric
from dicomd.domain.dicomdir import close_file_set
from dicomd.domain.model import Level
from dicomd.domain.zipstream import ZipStream

from conftest import Client
from dicomfactory import make_dataset, make_dicom, to_bytes


def upload(client: Client, data: bytes) -> dict[str, str]:
    answer = client.post("/instances", data=data)
    assert answer.status_code == 200, answer.text
    return answer.json()


def open_zip(response) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


def dicom(**tags: object) -> bytes:
    """A file with the given tags (None deletes one) over the factory's defaults."""
    ds = make_dataset(rows=4, cols=4)
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return to_bytes(ds)


# -- names, as Orthanc 1.10.1 writes them -----------------------------------------------------
def test_orthanc_zip_names() -> None:
    assert keep_alphanumeric("Doe^John^^Dr") == "Doe John Dr"
    assert keep_alphanumeric("  P-1, x/y (é) a.b_c  ") == "P1 xy a.b_c"
    assert folder_name(Level.PATIENT, {"PatientID": "887", "PatientName": "KNEE"}) == "887 KNEE"
    assert folder_name(Level.STUDY, {"StudyDescription": "IRM cérébrale"}) == "IRM crbrale"
    assert folder_name(Level.SERIES, {}) == "Unknown Series"
    assert instance_name_format("mr").format(3) == "MR000003.dcm"
    assert instance_name_format("M").format(12) == "M0000012.dcm"
    assert instance_name_format("").format(0) == "00000000.dcm"


def test_archive_folders_files_and_contents(make_daemon) -> None:
    _daemon, client = make_daemon()
    study = generate_uid()
    files = {
        "a": dicom(
            PatientID="P-1^x",
            PatientName="Doe^John^^Dr",
            StudyInstanceUID=study,
            AccessionNumber="AC,1",
            StudyDescription="Desc_with.dots  and   spaces!",
            Modality="ct",
            SeriesDescription="séries (é)",
        ),
        "b": None,
        "c": dicom(
            PatientID="Q",
            PatientName="Q",
            StudyDescription=None,
            AccessionNumber=None,
            Modality="M",
            SeriesDescription=None,
        ),
    }
    first = upload(client, files["a"])
    files["b"] = dicom(
        PatientID="P-1^x",
        PatientName="Doe^John^^Dr",
        StudyInstanceUID=study,
        SeriesInstanceUID=pydicom.dcmread(io.BytesIO(files["a"])).SeriesInstanceUID,
        AccessionNumber="AC,1",
        StudyDescription="Desc_with.dots  and   spaces!",
        Modality="ct",
        SeriesDescription="séries (é)",
        InstanceNumber=2,
    )
    second = upload(client, files["b"])
    upload(client, files["c"])

    response = client.get(f"/patients/{first['ParentPatient']}/archive")
    assert response.headers["Content-Disposition"] == f'filename="{first["ParentPatient"]}.zip"'
    assert "Content-Length" not in response.headers  # streamed
    archive = open_zip(response)
    folder = "P1 x Doe John Dr/AC1 Desc_with.dots and spaces/ct sries"
    assert archive.namelist() == [f"{folder}/CT000000.dcm", f"{folder}/CT000001.dcm"]
    assert archive.read(f"{folder}/CT000000.dcm") == files["a"]  # byte for byte
    assert archive.read(f"{folder}/CT000001.dcm") == files["b"]
    assert archive.testzip() is None

    # A study, a series: the folders above them are there too.
    series = open_zip(client.get(f"/series/{second['ParentSeries']}/archive"))
    assert series.namelist() == [f"{folder}/CT000000.dcm", f"{folder}/CT000001.dcm"]
    other = client.get("/patients").json()
    other.remove(first["ParentPatient"])
    names = open_zip(client.get(f"/patients/{other[0]}/archive")).namelist()
    assert names == ["Q Q/Unknown Study/M/M0000000.dcm"]


def test_same_names_in_one_folder_get_a_number(make_daemon) -> None:
    _daemon, client = make_daemon()
    for _ in range(3):
        upload(
            client,
            dicom(
                PatientID="R",
                PatientName="R",
                StudyDescription="Same",
                AccessionNumber=None,
                Modality="MR",
                SeriesDescription=None,
            ),
        )
    patient = client.get("/patients").json()[0]
    names = open_zip(client.get(f"/patients/{patient}/archive")).namelist()
    assert names == [
        "R R/Same/MR/MR000000.dcm",
        "R R/Same-2/MR/MR000000.dcm",
        "R R/Same-3/MR/MR000000.dcm",
    ]


def test_unknown_patient_study_series(make_daemon) -> None:
    _daemon, client = make_daemon()
    answer = upload(
        client,
        dicom(
            PatientID="",
            PatientName=None,
            StudyDescription=None,
            AccessionNumber=None,
            Modality=None,
            SeriesDescription=None,
        ),
    )
    names = open_zip(client.get(f"/studies/{answer['ParentStudy']}/archive")).namelist()
    assert names == ["Unknown Patient/Unknown Study/Unknown Series/00000000.dcm"]


# -- several resources: Orthanc's merging, and its errors -------------------------------------
@pytest.fixture
def two_patients(make_daemon):
    daemon, client = make_daemon()
    knee_study, knee_series = generate_uid(), [generate_uid(), generate_uid()]
    knee = [
        upload(
            client,
            make_dicom(
                patient_id="KNEE",
                study_uid=knee_study,
                series_uid=s,
                instance_number=i + 1,
                rows=4,
                cols=4,
            ),
        )
        for s in knee_series
        for i in range(2)
    ]
    brain = [
        upload(client, make_dicom(patient_id="BRAIN", study_uid=None, rows=4, cols=4))
        for _ in range(3)
    ]
    return daemon, client, knee, brain


def test_create_archive_merges_resources(two_patients) -> None:
    _daemon, client, knee, brain = two_patients
    patient = knee[0]["ParentPatient"]

    def count(body) -> int:
        response = client.post("/tools/create-archive", json=body)
        assert response.headers["Content-Disposition"] == 'filename="Archive.zip"'
        return len(open_zip(response).namelist())

    assert count([]) == 0
    assert count([patient]) == 4
    # The patient, twice its study, a series of the other patient: each instance once.
    assert (
        count([patient, knee[0]["ParentStudy"], knee[0]["ParentStudy"], brain[0]["ParentSeries"]])
        == 5
    )
    assert count({"Resources": [patient, brain[1]["ID"], knee[1]["ID"]]}) == 5
    assert count({"Resources": [knee[0]["ID"], knee[1]["ID"]], "Synchronous": True}) == 2
    # Newer Orthanc's GET form.
    listed = ",".join([patient, brain[2]["ID"]])
    assert len(open_zip(client.get(f"/tools/create-archive?resources={listed}")).namelist()) == 5
    # Patients, then what is below them, in the order of their Orthanc IDs.
    names = open_zip(
        client.post("/tools/create-archive", json=[patient, brain[0]["ParentPatient"]])
    )
    tops = [name.split("/")[0] for name in names.namelist()]
    by_id = sorted([(patient, "KNEE"), (brain[0]["ParentPatient"], "BRAIN")])
    assert list(dict.fromkeys(tops)) == [f"{pid} Test Patient" for _, pid in by_id]


def test_an_id_of_another_level_is_archived_whole(two_patients) -> None:
    """Orthanc looks the ID up whatever the collection of the URI."""
    _daemon, client, knee, _brain = two_patients
    study = knee[0]["ParentStudy"]
    response = client.get(f"/patients/{study}/archive")
    assert response.headers["Content-Disposition"] == f'filename="{study}.zip"'
    assert len(open_zip(response).namelist()) == 4


@pytest.mark.parametrize(
    ("method", "uri", "body", "status", "details"),
    [
        ("GET", "/patients/nope/archive", None, 404, None),
        ("POST", "/tools/create-archive", ["nope"], 404, None),
        ("POST", "/tools/create-archive", {}, 400, "Missing field Resources in the JSON body"),
        (
            "POST",
            "/tools/create-archive",
            {"Resources": "x"},
            400,
            "Expected a list of strings (Orthanc identifiers)",
        ),
        (
            "POST",
            "/tools/create-media",
            {"Resources": [1]},
            400,
            "Expected a list of strings (Orthanc identifiers)",
        ),
        (
            "POST",
            "/tools/create-media",
            {"Resources": [], "Synchronous": "yes"},
            400,
            "Boolean value expected in field: Synchronous",
        ),
        (
            "POST",
            "/tools/create-media",
            {"Resources": [], "Priority": "high"},
            400,
            "Integer value expected in field: Priority",
        ),
        (
            "POST",
            "/tools/create-media",
            {"Resources": [], "Transcode": 12},
            400,
            "String value expected in field: Transcode",
        ),
        (
            "POST",
            "/tools/create-archive",
            {"Resources": [], "Transcode": "nope"},
            400,
            "Unknown transfer syntax: nope",
        ),
    ],
)
def test_errors_as_orthanc(two_patients, method, uri, body, status, details) -> None:
    _daemon, client, _knee, _brain = two_patients
    response = client.request(method, uri, json=body)
    assert response.status_code == status
    assert response.json().get("Details") == details


def test_a_body_that_is_not_json(two_patients) -> None:
    _daemon, client, knee, _brain = two_patients
    for uri in (f"/series/{knee[0]['ParentSeries']}/archive", "/tools/create-media"):
        for body in (b"", b"{"):
            response = client.post(uri, data=body)
            assert response.status_code == 400 and response.json()["OrthancStatus"] == 15


def test_transcode_only_to_the_stored_syntax_for_now(two_patients) -> None:
    _daemon, client, knee, _brain = two_patients
    series = knee[0]["ParentSeries"]
    stored = "1.2.840.10008.1.2.1"  # the factory's explicit VR little endian
    assert len(open_zip(client.get(f"/series/{series}/media?transcode={stored}")).namelist()) == 3
    z = open_zip(client.post(f"/series/{series}/archive", json={"Transcode": stored}))
    assert len(z.namelist()) == 2
    response = client.post(
        f"/series/{series}/archive", json={"Transcode": "1.2.840.10008.1.2.4.50"}
    )
    assert response.status_code == 400
    assert "Transcoding is not supported yet" in response.json()["Details"]
    assert client.get(f"/series/{series}/archive?transcode=nope").status_code == 400


def test_an_instance_deleted_after_the_plan_is_left_out(two_patients) -> None:
    daemon, client, knee, _brain = two_patients
    service = daemon.services.archives
    plan = service.plan([knee[0]["ParentPatient"]], media=False)
    assert plan.instances_count == 4
    client.delete(f"/instances/{knee[1]['ID']}")
    archive = zipfile.ZipFile(io.BytesIO(b"".join(service.stream(plan))))
    assert len(archive.namelist()) == 3
    assert archive.testzip() is None


# -- media and DICOMDIR -----------------------------------------------------------------------
def test_media_with_a_dicomdir(two_patients, tmp_path: Path) -> None:
    _daemon, client, knee, brain = two_patients
    body = [knee[0]["ParentPatient"], brain[0]["ParentPatient"]]
    media = open_zip(client.post("/tools/create-media", json=body))
    names = media.namelist()
    assert names == [f"IMAGES/IM{i}" for i in range(7)] + ["DICOMDIR"]
    media.extractall(tmp_path)

    dicomdir = pydicom.dcmread(tmp_path / "DICOMDIR")
    assert dicomdir.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert dicomdir.FileSetID == "ORTHANC_MEDIA"
    records = dicomdir.DirectoryRecordSequence
    kinds = [r.DirectoryRecordType for r in records]
    assert kinds.count("PATIENT") == 2 and kinds.count("STUDY") == 4
    assert kinds.count("SERIES") == 5 and kinds.count("IMAGE") == 7
    # Every IMAGE record names a file of the ZIP holding that very instance.
    fileset = FileSet(tmp_path / "DICOMDIR")
    try:
        assert len(fileset) == 7
        for instance in fileset:
            ds = instance.load()
            assert ds.SOPInstanceUID == instance.ReferencedSOPInstanceUIDInFile
            assert instance.ReferencedTransferSyntaxUIDInFile == ds.file_meta.TransferSyntaxUID
    finally:
        close_file_set(fileset)
    series = [r for r in records if r.DirectoryRecordType == "SERIES"]
    assert all("SeriesDescription" not in r for r in series)

    dump = subprocess.run(
        ["dcmdump", str(tmp_path / "DICOMDIR")], capture_output=True, text=True, check=True
    ).stdout
    assert dump.count('"Directory Record" IMAGE') == 7
    assert "[IMAGES\\IM6]" in dump and "[ORTHANC_MEDIA]" in dump


def test_extended_media_and_records_as_orthanc(make_daemon, tmp_path: Path) -> None:
    _daemon, client = make_daemon()
    answer = upload(
        client,
        dicom(
            PatientID=None,
            StudyDate=None,
            StudyID=None,
            InstanceNumber=None,
            SeriesDescription="Séries (1)",
            SeriesDate="20200304",
            StudyTime="",
        ),
    )
    for uri, extended in [
        (f"/series/{answer['ParentSeries']}/media?extended", True),
        (f"/series/{answer['ParentSeries']}/media", False),
        ("/tools/create-media-extended", True),
    ]:
        if uri.startswith("/tools"):
            response = client.post(uri, json=[answer["ID"]])
        else:
            response = client.get(uri)
        open_zip(response).extractall(tmp_path)
        records = {
            r.DirectoryRecordType: r
            for r in pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence
        }
        patient, study = records["PATIENT"], records["STUDY"]
        assert "PatientID" not in patient and patient.PatientName == "Test^Patient"
        assert study.StudyDate == "20200304"  # the series date stands in for it
        assert study.StudyTime == ""  # present, empty: kept as it is
        assert "StudyID" not in study and study.AccessionNumber == "ACC1"
        assert records["IMAGE"].InstanceNumber is None  # type 1: there, empty
        assert records["IMAGE"].SpecificCharacterSet == "ISO_IR 100"
        if extended:
            assert records["SERIES"].SeriesDescription == "Sries (1)"  # ASCII only
        else:
            assert "SeriesDescription" not in records["SERIES"]


def test_a_media_uploads_back_without_its_dicomdir(make_daemon) -> None:
    _daemon, client = make_daemon()
    data = make_dicom(rows=4, cols=4)
    answer = upload(client, data)
    media = client.get(f"/studies/{answer['ParentStudy']}/media").content
    client.delete(f"/instances/{answer['ID']}")
    result = client.post("/instances", data=media).json()
    assert [r["ID"] for r in result] == [answer["ID"]]
    assert client.get(f"/instances/{answer['ID']}/file").content == data


# -- streaming ----------------------------------------------------------------------------------
def test_zip64_when_the_members_are_many() -> None:
    """More members than a ZIP without its 64-bit records can count."""
    stream = ZipStream(level=1)
    parts = [b"".join(stream.member(f"f{i}", 1, [b"x"])) for i in range(70_000)]
    parts.append(stream.finish())
    archive = zipfile.ZipFile(io.BytesIO(b"".join(parts)))
    assert len(archive.infolist()) == 70_000
    assert archive.read("f69999") == b"x"


def _peak_rss_reset(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM (Linux 4.0+)


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(300)
def test_a_large_archive_is_streamed_in_bounded_memory(daemon_process) -> None:
    """300 MB of instances: while the daemon sends their archive, its peak memory grows by
    a few megabytes, not by the archive's size."""
    process = daemon_process(HttpProcesses=1).start()
    client = process.client()
    study, series = generate_uid(), generate_uid()
    size = 0
    for number in range(30):
        data = make_dicom(
            study_uid=study,
            series_uid=series,
            instance_number=number + 1,
            rows=2240,
            cols=2240,
            seed=number,
        )
        size += len(data)
        answer = upload(client, data)
    assert size > 290_000_000
    # A fresh process, so that the uploads' memory does not hide the archive's.
    process.kill(signal.SIGTERM)
    process.start()
    client = process.client()
    client.get("/system")
    pid = process.proc.pid
    _peak_rss_reset(pid)
    before = _peak_rss(pid)
    out = io.BytesIO()
    with client.get(f"/studies/{answer['ParentStudy']}/archive", stream=True) as response:
        assert response.status_code == 200 and "Content-Length" not in response.headers
        for chunk in response.iter_content(1024 * 1024):
            out.write(chunk)
    growth = _peak_rss(pid) - before
    assert growth < 40_000_000, growth
    archive = zipfile.ZipFile(out)
    assert len(archive.namelist()) == 30 and archive.testzip() is None
    assert out.tell() > size / 3  # it was all sent, deflated


def test_dcmdump_is_installed() -> None:
    assert shutil.which("dcmdump"), "dcmtk's dcmdump is needed by these tests"
