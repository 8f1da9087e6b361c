"""Tests for dicomd.domain.dicomjson: Orthanc 1.10.1's DICOM-as-JSON and main DICOM tags.

Expected values are read off the files by hand and were checked against the answers of a
real Orthanc 1.10.1 (Debian package, DCMTK 3.6.7) for the same files.  Files are either
pydicom's bundled test files or built here byte by byte, so that malformed or unusual
encodings (which pydicom would refuse to write) can be tested too.
"""

from __future__ import annotations

import random
import struct
import warnings
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_charset_files, get_testdata_file, get_testdata_files
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dicomd.domain.dicomjson import (
    MAIN_DICOM_TAGS,
    dataset_to_json,
    main_dicom_tags,
    tag_value_to_string,
)

_LONG = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


def _el(tag: int, vr: str, value: bytes, *, implicit: bool = False, big: bool = False) -> bytes:
    """Encode one element exactly as given (no padding, no validation)."""
    e = ">" if big else "<"
    group, element = tag >> 16, tag & 0xFFFF
    if implicit:
        return struct.pack(e + "HHI", group, element, len(value)) + value
    if vr in _LONG:
        return struct.pack(e + "HH2sHI", group, element, vr.encode(), 0, len(value)) + value
    return struct.pack(e + "HH2sH", group, element, vr.encode(), len(value)) + value


def _seq(tag: int, items: list[bytes], *, implicit: bool = False) -> bytes:
    body = b"".join(struct.pack("<HHI", 0xFFFE, 0xE000, len(item)) + item for item in items)
    return _el(tag, "SQ", body, implicit=implicit)


def _sorted(elements: list[bytes], big: bool = False) -> bytes:
    def tag_of(element: bytes) -> tuple[int, ...]:
        return struct.unpack((">" if big else "<") + "HH", element[:4])

    return b"".join(element for _tag, element in sorted((tag_of(e), e) for e in elements))


def _write(path: Path, elements: list[bytes], syntax: str = ExplicitVRLittleEndian) -> Path:
    """Write a Part 10 file: pydicom's meta header, then our hand-made dataset."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.7")
    meta.MediaStorageSOPInstanceUID = UID("1.2.3.4")
    meta.TransferSyntaxUID = UID(syntax)
    meta.ImplementationClassUID = UID("1.2.3.4.5")
    header = Dataset()
    header.file_meta = meta
    buffer = BytesIO()
    header.save_as(buffer, enforce_file_format=True)
    path.write_bytes(buffer.getvalue() + _sorted(elements, syntax == ExplicitVRBigEndian))
    return path


def _load(path: str | Path) -> Dataset:
    """Read like dicomd does; pydicom's own reader may warn on odd files, we may not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _crafted(tmp_path: Path, elements: list[bytes], **kwargs: str) -> Dataset:
    return _load(_write(tmp_path / "crafted.dcm", elements, **kwargs))


def _pydicom_file(name: str) -> str:
    path = get_testdata_file(name)
    assert isinstance(path, str)
    return path


def _charset_file(name: str) -> str:
    return next(f for f in get_charset_files() if Path(f).name == name)


# -- main DICOM tags ---------------------------------------------------------------------


def test_main_dicom_tags_table_is_orthanc_1_10() -> None:
    keywords = {
        level: [pydicom.datadict.keyword_for_tag(tag) for tag in tags]
        for level, tags in MAIN_DICOM_TAGS.items()
    }
    assert keywords["Patient"] == [
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "OtherPatientIDs",
        "PatientID",
    ]
    assert len(keywords["Study"]) == 10 and "StudyInstanceUID" in keywords["Study"]
    assert "RequestingPhysician" in keywords["Study"]
    assert len(keywords["Series"]) == 22 and "SeriesInstanceUID" in keywords["Series"]
    assert len(keywords["Instance"]) == 11 and "SOPInstanceUID" in keywords["Instance"]
    # ImageOrientationPatient is a main tag of both series and instances since 1.4.2.
    assert "ImageOrientationPatient" in keywords["Series"]
    assert "ImageOrientationPatient" in keywords["Instance"]


def test_main_dicom_tags_of_ct_small() -> None:
    ds = _load(_pydicom_file("CT_small.dcm"))
    assert main_dicom_tags(ds, "Patient") == {
        "PatientBirthDate": "",  # present but empty: kept as ""
        "PatientID": "1CT1",
        "PatientName": "CompressedSamples^CT1",
        "PatientSex": "O",
    }
    assert main_dicom_tags(ds, "Study") == {
        "AccessionNumber": "",
        "InstitutionName": "JFK IMAGING CENTER",
        "ReferringPhysicianName": "",
        "StudyDate": "20040119",
        "StudyDescription": "e+1",
        "StudyID": "1CT1",
        "StudyInstanceUID": "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322",
        "StudyTime": "072730",
    }
    instance = main_dicom_tags(ds, "Instance")
    # Multi-valued DS keep their original text, joined with a backslash.
    assert instance["ImagePositionPatient"] == "-158.135803\\-179.035797\\-75.699997"
    assert instance["ImageOrientationPatient"] == (
        "1.000000\\0.000000\\0.000000\\0.000000\\1.000000\\0.000000"
    )
    assert list(main_dicom_tags(ds, "Series")) == sorted(main_dicom_tags(ds, "Series"))
    with pytest.raises(ValueError):
        main_dicom_tags(ds, "Frame")


def test_main_dicom_tags_drop_null_and_too_long_values(tmp_path: Path) -> None:
    ds = _crafted(
        tmp_path,
        [
            _el(0x00081030, "LO", b"X" * 300),  # StudyDescription: longer than 256 bytes
            _el(0x00181030, "LO", b"Z" * 256),  # ProtocolName: exactly 256, kept
            _el(0x00080080, "UN", b"Unknown-VR Institution"),  # UN, but LO in the dictionary
            _el(0x00540081, "UN", b"\x1e\x00"),  # NumberOfSlices as UN: US is binary, null
            _el(0x00080050, "SH", b""),  # AccessionNumber: empty
            _el(0x0020000D, "UI", b"1.2.3\0"),
            _el(0x00101000, "LO", b"A\\B"),
        ],
    )
    assert main_dicom_tags(ds, "Study") == {
        "AccessionNumber": "",
        "InstitutionName": "Unknown-VR Institution",
        "StudyInstanceUID": "1.2.3",
    }
    assert main_dicom_tags(ds, "Series") == {"ProtocolName": "Z" * 256}
    assert main_dicom_tags(ds, "Patient") == {"OtherPatientIDs": "A\\B"}


# -- values --------------------------------------------------------------------------------


def test_text_is_trimmed_like_dcmtk(tmp_path: Path) -> None:
    ds = _crafted(
        tmp_path,
        [
            _el(0x00080008, "CS", b"ORIGINAL\\PRIMARY \\ AXIAL  "),
            _el(0x00080070, "LO", b"  Lead spaces\0"),
            _el(0x00081090, "LO", b"AB \0"),  # NUL ends the string, the space before stays
            _el(0x00080018, "UI", b" 1.2 .3 \0"),  # all spaces go from UIDs
            _el(0x00081155, "UI", b"1.2\t.3\r\n"),  # and all other white space
            _el(0x00180050, "DS", b"abc "),  # invalid DS shown verbatim
            _el(0x00180060, "DS", b" 1.50 \\-2e3 \\ "),
            _el(0x00200011, "IS", b"x1"),
            _el(0x00200013, "IS", b" 7 "),  # odd length: DCMTK pads with NUL, spaces stay
            _el(0x00204000, "LT", b"line\r\n  "),
            _el(0x00100010, "PN", b""),
        ],
    )
    full = dataset_to_json(ds, "full")
    values = {key: node["Value"] for key, node in full.items()}
    assert values == {
        "0008,0008": "ORIGINAL\\PRIMARY \\ AXIAL",
        "0008,0018": "1.2.3",
        "0008,0070": "  Lead spaces",
        "0008,1090": "AB ",
        "0008,1155": "1.2.3",
        "0010,0010": "",
        "0018,0050": "abc",
        "0018,0060": " 1.50 \\-2e3 \\",
        "0020,0011": "x1",
        "0020,0013": " 7 ",
        "0020,4000": "line\r\n",
    }
    assert full["0018,0060"] == {"Name": "KVP", "Type": "String", "Value": " 1.50 \\-2e3 \\"}
    assert tag_value_to_string(ds, "SeriesNumber") == "x1"
    assert tag_value_to_string(ds, 0x00200013) == " 7 "
    assert tag_value_to_string(ds, (0x0008, 0x0018)) == "1.2.3"
    assert tag_value_to_string(ds, "StudyDate") is None  # absent


def test_binary_numbers_are_printed_like_orthanc(tmp_path: Path) -> None:
    ds = _crafted(
        tmp_path,
        [
            _el(0x00280010, "US", struct.pack("<H", 512)),
            _el(0x00280011, "US", struct.pack("<HH", 1, 2)),
            _el(0x00280106, "SS", struct.pack("<h", -5)),
            _el(0x00209057, "UL", struct.pack("<I", 4000000000)),
            _el(0x00186020, "SL", struct.pack("<i", -1) + b"\x02\x00"),  # 6 bytes: 1st value only
            _el(0x00181320, "FL", struct.pack("<f", 0.1)),
            _el(0x00189087, "FD", struct.pack("<d", 0.1)),
            _el(0x00189089, "FD", struct.pack("<ddd", 1e20, -2.5, 1e-5)),
            _el(0x00189195, "FD", struct.pack("<d", float("nan"))),
            _el(0x00189310, "FD", struct.pack("<d", float("-inf"))),
            _el(0x00189303, "FD", b""),  # no value: null
            _el(0x00280009, "AT", struct.pack("<HHHH", 0x0018, 0x1063, 0x0054, 0x0080)),
        ],
    )
    short = dataset_to_json(ds, "short")
    assert short == {
        "0018,1320": "0.10000000149011612",  # float32 widened, 17 significant digits
        "0018,6020": "-1",
        "0018,9087": "0.10000000000000001",
        "0018,9089": "1e+20\\-2.5\\1.0000000000000001e-05",
        "0018,9195": "nan",
        "0018,9303": None,
        "0018,9310": "-inf",
        "0020,9057": "4000000000",
        "0028,0009": "0018,1063",  # AT: only the first tag, lower-case hexadecimal
        "0028,0010": "512",
        "0028,0011": "1\\2",
        "0028,0106": "-5",
    }


def test_big_endian_values(tmp_path: Path) -> None:
    elements = [
        _el(0x00189087, "FD", struct.pack(">d", 0.5), big=True),
        _el(0x00209165, "AT", struct.pack(">HH", 0x0020, 0x9056), big=True),
        _el(0x00280010, "US", struct.pack(">HH", 512, 3), big=True),
    ]
    ds = _crafted(tmp_path, elements, syntax=ExplicitVRBigEndian)
    assert dataset_to_json(ds, "short") == {
        "0018,9087": "0.5",
        "0020,9165": "0020,9056",
        "0028,0010": "512\\3",
    }


def test_binary_and_unknown_vrs(tmp_path: Path) -> None:
    ds = _crafted(
        tmp_path,
        [
            _el(0x00080005, "CS", b"ISO_IR 192"),
            _el(0x00281201, "OW", b"\x01\x02" * 4),
            _el(0x00660016, "OF", struct.pack("<ff", 1, 2)),
            _el(0x00080080, "UN", b"Caf\xc3\xa9 "),  # public UN text: decoded, not trimmed
            _el(0x00280010, "UN", b"\x07\x00"),  # UN whose dictionary VR is US: null
            _el(0x00290010, "LO", b"SIEMENS CSA HEADER"),
            _el(0x00291008, "UN", b"IMAGE NUM 4 "),  # private UN: ASCII kept as is
            _el(0x00291009, "UN", b"caf\xc3\xa9"),  # private UN, not ASCII: null
        ],
    )
    full = dataset_to_json(ds, "full")
    assert full["0028,1201"] == {
        "Name": "RedPaletteColorLookupTableData",
        "Type": "Null",
        "Value": None,
    }
    assert full["0066,0016"]["Type"] == "Null"
    assert full["0008,0080"]["Value"] == "Café "
    assert full["0028,0010"] == {"Name": "Rows", "Type": "Null", "Value": None}
    assert full["0029,1008"] == {
        "Name": "CSAImageHeaderType",
        "PrivateCreator": "SIEMENS CSA HEADER",
        "Type": "String",
        "Value": "IMAGE NUM 4 ",
    }
    assert full["0029,1009"]["Value"] is None
    assert tag_value_to_string(ds, 0x00281201) is None


def test_too_long_values(tmp_path: Path) -> None:
    ds = _crafted(
        tmp_path,
        [
            _el(0x00080005, "CS", b"ISO_IR 192"),
            _el(0x00081030, "LO", b"X" * 300),  # main DICOM tags get no exemption here
            _el(0x00181030, "LO", "é".encode() * 128),  # 256 UTF-8 bytes: still a string
            _el(0x00181000, "LO", "é".encode() * 129),  # 258 bytes
        ],
    )
    full = dataset_to_json(ds, "full")
    assert full["0008,1030"] == {"Name": "StudyDescription", "Type": "TooLong", "Value": None}
    assert full["0018,1030"]["Value"] == "é" * 128
    assert full["0018,1000"]["Type"] == "TooLong"
    assert dataset_to_json(ds, "simplified")["StudyDescription"] is None
    assert dataset_to_json(ds, "full", max_length=0)["0018,1000"]["Value"] == "é" * 129
    assert dataset_to_json(ds, "short", max_length=10)["0018,1030"] is None
    assert tag_value_to_string(ds, "StudyDescription") == "X" * 300


# -- character sets -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "patient_name"),
    [
        ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"),
        ("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동"),
        ("chrX1.dcm", "Wang^XiaoDong=王^小東="),
        ("chrX2.dcm", "Wang^XiaoDong=王^小东="),
        ("chrRuss.dcm", "Люкceмбypг"),  # the file really mixes Latin letters in
        ("chrGreek.dcm", "Διονυσιος"),
        ("chrArab.dcm", "قباني^لنزار"),
        ("chrHbrw.dcm", "שרון^דבורה"),
        ("chrFren.dcm", "Buc^Jérôme"),
        ("chrGerm.dcm", "Äneas^Rüdiger"),
        # Orthanc decodes everything with the first defined term (Shift-JIS here), so the
        # ISO 2022 kanji stay as ASCII bytes once their escape sequences are removed.
        ("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=;3ED^B@O:=$d$^$@^$?$m$&"),
    ],
)
def test_charset_files(name: str, patient_name: str) -> None:
    ds = _load(_charset_file(name))
    assert tag_value_to_string(ds, "PatientName") == patient_name
    assert main_dicom_tags(ds, "Patient")["PatientName"] == patient_name
    assert dataset_to_json(ds, "simplified")["PatientName"] == patient_name


def test_charset_element_itself() -> None:
    assert dataset_to_json(_load(_charset_file("chrH31.dcm")), "short")["0008,0005"] == (
        "\\ISO 2022 IR 87"
    )
    # ICU's Shift-JIS turns the backslash into a yen sign, even in this element.
    assert dataset_to_json(_load(_charset_file("chrH32.dcm")), "short")["0008,0005"] == (
        "ISO 2022 IR 13¥ISO 2022 IR 87"
    )


@pytest.mark.parametrize(
    ("charset", "raw", "expected"),
    [
        (None, b"M\xfcller", "Müller"),  # no charset: Latin-1
        (b"", b"M\xfcller", "Müller"),
        (b"ISO_IR 100", b"\x1b$Besc\tx", "\x1b$Besc\tx"),  # no extensions: kept
        (b"\\ISO 2022 IR 100", b"A\x1b-A\xe9\x0e\x0fB", "AéB"),  # escapes removed
        (b"ISO_IR 192", b"M\xfcller^J\xc3\xa9", "Mller^Jé"),  # bad UTF-8 bytes skipped
        # ... together with the byte that ends a broken sequence, as boost::locale does
        (b"ISO_IR 192", b"1^\xe9-Aa\xc3 b", "1^Aab"),
        (b"ISO_IR 999", b"M\xfcller\tX\x7f", "MllerX"),  # unknown: printable ASCII only
        (b"ISO_IR_100", b"M\xfcller", "Mller"),  # misspelt terms are unknown in 1.10
        (b"ISO 2022 IR 6\\ISO 2022 IR 87", b"a\x1b(Bb", "a(Bb"),
        (b" iso_ir 100 ", b"\xe9", "é"),  # terms are stripped and upper-cased
        (b"ISO_IR 13", b"A\\B~C\xb1", "A¥B‾Cｱ"),
        (b"GBK", "王".encode("gbk"), "王"),
        (b"ISO_IR 166", b"\xca\xc7\xd1\xca\xb4\xd5", "สวัสดี"),
        (b"\\ISO 2022 IR 58", b"\x1b$)A\xd5\xc5^\xc8\xfd", "张^三"),
    ],
)
def test_charset_rules(tmp_path: Path, charset: bytes | None, raw: bytes, expected: str) -> None:
    elements = [_el(0x00100010, "PN", raw)]
    if charset is not None:
        elements.append(_el(0x00080005, "CS", charset))
    ds = _crafted(tmp_path, elements)
    assert tag_value_to_string(ds, "PatientName") == expected


# -- names, private tags, sequences ----------------------------------------------------------


def test_names_of_private_group_length_and_unknown_tags(tmp_path: Path) -> None:
    ds = _crafted(
        tmp_path,
        [
            _el(0x00080000, "UL", struct.pack("<I", 1234)),
            _el(0x00080001, "UL", struct.pack("<I", 0)),
            _el(0x00110000, "UL", struct.pack("<I", 10)),
            _el(0x00189999, "LO", b"unknown public"),
            _el(0x00190010, "LO", b"GEMS_ACQU_01"),
            _el(0x00191003, "DS", b"12.5"),
            _el(0x00290010, "LO", b"ACME 1.0"),
            _el(0x00291001, "LO", b"private value"),
            _el(0x00291003, "OB", b"\x00\x01\x02\x03"),
            _el(0x00090010, "LO", b""),  # empty reservation: no creator
            _el(0x00091001, "LO", b"orphan"),
            _el(0x00311001, "LO", b"no creator"),
            _el(0x00101000, "LO", b"ID1\\ID2"),  # retired, but Orthanc keeps its name
        ],
    )
    full = dataset_to_json(ds, "full")
    names = {key: node["Name"] for key, node in full.items()}
    assert names == {
        "0008,0000": "GenericGroupLength",
        "0008,0001": "RETIRED_LengthToEnd",
        "0009,0010": "PrivateCreator",
        "0009,1001": "Unknown Tag & Data",
        "0010,1000": "OtherPatientIDs",
        "0011,0000": "PrivateGroupLength",
        "0018,9999": "Unknown Tag & Data",
        "0019,0010": "PrivateCreator",
        "0019,1003": "CellNumberAtTheta",
        "0029,0010": "PrivateCreator",
        "0029,1001": "Unknown Tag & Data",
        "0029,1003": "Unknown Tag & Data",
        "0031,1001": "Unknown Tag & Data",
    }
    assert full["0029,1001"] == {
        "Name": "Unknown Tag & Data",
        "PrivateCreator": "ACME 1.0",
        "Type": "String",
        "Value": "private value",
    }
    assert full["0029,1003"]["Value"] is None
    assert "PrivateCreator" not in full["0009,1001"]
    assert "PrivateCreator" not in full["0029,0010"]
    simplified = dataset_to_json(ds, "simplified")
    # Keys are names, sorted; with duplicate names the last element in tag order wins.
    assert simplified["Unknown Tag & Data"] == "no creator"
    assert simplified["PrivateCreator"] == "ACME 1.0"
    assert simplified["CellNumberAtTheta"] == "12.5"
    assert list(simplified) == sorted(simplified)


def test_implicit_vr(tmp_path: Path) -> None:
    def el(tag: int, value: bytes) -> bytes:
        return _el(tag, "", value, implicit=True)

    ds = _crafted(
        tmp_path,
        [
            el(0x00080005, b"ISO_IR 100"),
            el(0x00100010, b"Impl^Icit "),
            el(0x00189087, struct.pack("<d", 0.25)),
            el(0x00189999, b"unknown public"),  # not in the dictionary: UN, null
            el(0x00280103, struct.pack("<H", 1)),
            el(0x00280106, struct.pack("<h", -5)),  # US or SS: SS as PixelRepresentation is 1
            el(0x00281102, struct.pack("<HHH", 256, 0, 16)),  # US or SS left unresolved: null
            el(0x00290010, b"ACME 1.0"),
            el(0x00291001, b"acme private"),  # unknown creator: UN, null
            el(0x00290011, b"SIEMENS CSA HEADER"),
            el(0x00291108, b"IMAGE NUM 4 "),  # known private tag: CS
            _seq(0x00081032, [el(0x00080100, b"C1")], implicit=True),
        ],
        syntax=ImplicitVRLittleEndian,
    )
    assert dataset_to_json(ds, "short") == {
        "0008,0005": "ISO_IR 100",
        "0008,1032": [{"0008,0100": "C1"}],
        "0010,0010": "Impl^Icit",
        "0018,9087": "0.25",
        "0018,9999": None,
        "0028,0103": "1",
        "0028,0106": "-5",
        "0028,1102": None,
        "0029,0010": "ACME 1.0",
        "0029,0011": "SIEMENS CSA HEADER",
        "0029,1001": None,
        "0029,1108": "IMAGE NUM 4",
    }


def test_sequences_of_rtplan() -> None:
    ds = _load(_pydicom_file("rtplan.dcm"))
    simplified = dataset_to_json(ds, "simplified")
    beam = simplified["BeamSequence"][0]
    assert beam["BeamName"] == "Field 1"
    assert beam["BeamLimitingDeviceSequence"] == [
        {"NumberOfLeafJawPairs": "1", "RTBeamLimitingDeviceType": "X"},
        {"NumberOfLeafJawPairs": "1", "RTBeamLimitingDeviceType": "Y"},
    ]
    point = beam["ControlPointSequence"][0]
    assert point["BeamLimitingDevicePositionSequence"][0]["LeafJawPositions"] == (
        "-100.00000000000\\100.000000000000"
    )
    short = dataset_to_json(ds, "short")
    assert short["300a,00b0"][0]["300a,00c2"] == "Field 1"
    full = dataset_to_json(ds, "full")
    assert full["300a,00b0"]["Name"] == "BeamSequence"
    assert full["300a,00b0"]["Type"] == "Sequence"
    assert full["300a,00b0"]["Value"][0]["300a,00c2"] == {
        "Name": "BeamName",
        "Type": "String",
        "Value": "Field 1",
    }
    assert tag_value_to_string(ds, "BeamSequence") is None


def test_ct_small_full_json_with_pixel_data() -> None:
    ds = _load(_pydicom_file("CT_small.dcm"))
    full = dataset_to_json(ds, "full", has_pixel_data=True)
    assert full["0010,0010"] == {
        "Name": "PatientName",
        "Type": "String",
        "Value": "CompressedSamples^CT1",
    }
    assert full["0010,1002"] == {
        "Name": "OtherPatientIDsSequence",
        "Type": "Sequence",
        "Value": [
            {
                "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "ABCD1234"},
                "0010,0022": {"Name": "TypeOfPatientID", "Type": "String", "Value": "TEXT"},
            },
            {
                "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "1234ABCD"},
                "0010,0022": {"Name": "TypeOfPatientID", "Type": "String", "Value": "TEXT"},
            },
        ],
    }
    assert full["0009,1001"] == {
        "Name": "FullFidelity",
        "PrivateCreator": "GEMS_IDEN_01",
        "Type": "String",
        "Value": "GE_GENESIS_FF",
    }
    assert full["7fe0,0010"] == {"Name": "PixelData", "Type": "Null", "Value": None}
    assert list(full) == sorted(full)
    assert "0002,0010" not in full  # the file meta information is not shown
    assert "7fe0,0010" not in dataset_to_json(ds, "full")
    assert dataset_to_json(ds, "simplified", has_pixel_data=True)["PixelData"] is None
    # Read with its pixel data, the file shows the same null entry by itself.
    with_pixels = pydicom.dcmread(_pydicom_file("CT_small.dcm"))
    assert dataset_to_json(with_pixels, "full") == full
    with pytest.raises(ValueError):
        dataset_to_json(ds, "human")


def test_crafted_sequences(tmp_path: Path) -> None:
    item1 = _sorted(
        [
            _el(0x00080100, "SH", b"CODE1 "),
            _el(0x00080104, "LO", b"Meaning \xe9"),
            _seq(
                0x0040A168,
                [
                    _sorted(
                        [
                            _el(0x00080100, "SH", b"N2"),
                            _el(0x00290010, "LO", b"ACME 1.0"),
                            _el(0x00291001, "LO", b"in seq"),
                        ]
                    )
                ],
            ),
        ]
    )
    item2 = _sorted([_el(0x00080100, "SH", b"CODE2 "), _el(0x00080104, "LO", b"Q" * 300)])
    ds = _crafted(
        tmp_path,
        [
            _el(0x00080005, "CS", b"ISO_IR 100"),
            _seq(0x00081032, [item1, item2]),
            _seq(0x00081110, []),
            _seq(0x00081111, [b""]),
            _seq(0x00291010, [_el(0x00100010, "PN", b"In^Private")]),
            _el(0x00290010, "LO", b"ACME 1.0"),
            _el(0x00081115, "SQ", b"\xfe\xff\x00\xe0\xff\x00\x00\x00\x08\x00"),  # truncated
            _el(0x7FE00010, "OW", b"\0\0"),
            _el(0x7FE10010, "LO", b"after the pixel data"),
            _el(0xFFFCFFFC, "OB", b"\0\0"),
        ],
    )
    short = dataset_to_json(ds, "short")
    assert short["0008,1032"] == [
        {
            "0008,0100": "CODE1",
            "0008,0104": "Meaning é",
            "0040,a168": [{"0008,0100": "N2", "0029,0010": "ACME 1.0", "0029,1001": "in seq"}],
        },
        {"0008,0100": "CODE2", "0008,0104": None},
    ]
    assert short["0008,1110"] == []
    assert short["0008,1111"] == [{}]
    assert short["0008,1115"] is None
    assert "7fe1,0010" not in short and "fffc,fffc" not in short
    full = dataset_to_json(ds, "full")
    assert full["0029,1010"] == {  # a private sequence shows no PrivateCreator
        "Name": "Unknown Tag & Data",
        "Type": "Sequence",
        "Value": [{"0010,0010": {"Name": "PatientName", "Type": "String", "Value": "In^Private"}}],
    }
    assert full["0008,1032"]["Value"][0]["0040,a168"]["Value"][0]["0029,1001"] == {
        "Name": "Unknown Tag & Data",
        "PrivateCreator": "ACME 1.0",
        "Type": "String",
        "Value": "in seq",
    }
    # Read with the pixel data: PixelData is null, what follows it is still left out.
    everything = pydicom.dcmread(tmp_path / "crafted.dcm")
    assert 0x7FE10010 in everything
    with_pixels = dataset_to_json(everything, "full")
    assert with_pixels["7fe0,0010"] == {"Name": "PixelData", "Type": "Null", "Value": None}
    assert "7fe1,0010" not in with_pixels and "fffc,fffc" not in with_pixels
    simplified = dataset_to_json(ds, "simplified")
    assert simplified["ProcedureCodeSequence"][1] == {"CodeMeaning": None, "CodeValue": "CODE2"}
    assert simplified["Unknown Tag & Data"] == [{"PatientName": "In^Private"}]


def test_converted_elements_give_the_same_strings() -> None:
    raw = _load(_pydicom_file("CT_small.dcm"))
    converted = _load(_pydicom_file("CT_small.dcm"))
    assert all(elem.tag in converted for elem in converted)  # iterating converts them all
    assert dataset_to_json(converted, "full") == dataset_to_json(raw, "full")
    assert tag_value_to_string(converted, converted["PatientName"]) == "CompressedSamples^CT1"
    assert tag_value_to_string(converted, converted["Rows"]) == "128"
    assert tag_value_to_string(raw, raw.get_item("Columns")) == "128"


# -- robustness ----------------------------------------------------------------------------


def _all_outputs(ds: Dataset) -> None:
    for fmt in ("full", "simplified", "short"):
        dataset_to_json(ds, fmt, has_pixel_data=True)
    for level in MAIN_DICOM_TAGS:
        main_dicom_tags(ds, level)
    for tag in sorted(ds.keys()):
        tag_value_to_string(ds, tag)


def test_garbage_values_never_raise_nor_warn(tmp_path: Path) -> None:
    rng = random.Random(1234)
    vrs = [
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FL",
        "FD",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
    ]
    for round_ in range(10):
        elements = [
            _el(
                0x00080005,
                "CS",
                rng.choice([b"ISO_IR 192", b"\\ISO 2022 IR 87", b"GB18030", b"bogus", b""]),
            )
        ]
        for index, vr in enumerate(vrs):
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
            elements.append(_el(0x00190010, "LO", b"GEMS_ACQU_01"))
            elements.append(_el(0x00191000 + index, vr, value))
            elements.append(_el(0x00180000 + 0x9000 + index * 2 + round_ % 2, vr, value))
        ds = _crafted(tmp_path, elements)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _all_outputs(ds)


def test_every_bundled_pydicom_file_never_raises_nor_warns() -> None:
    paths = [p for p in get_testdata_files() + get_charset_files() if Path(p).is_file()]
    checked = 0
    for path in paths:
        try:
            ds = _load(path)
        except Exception:
            continue  # not DICOM at all (text, JSON, ICC profile...)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _all_outputs(ds)
        checked += 1
    assert checked > 100
