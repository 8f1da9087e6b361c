"""The Python samples of scripts/python/, one rule per test, written with dicomd's pytest
plugin: copy one next to your own rules. Peers need not answer: forwards are recorded, not
sent."""

from __future__ import annotations

CONFIG = {
    "OrthancPeers": {
        "pacs": ["http://127.0.0.1:9/"],
        "ct-archive": ["http://127.0.0.1:9/"],
        "mr-archive": ["http://127.0.0.1:9/"],
    },
    "UserMetadata": {"RoutedTo": 1024},
}


def test_auto_route_sends_every_instance_to_the_pacs(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("scripts/python/auto_route.py", config=CONFIG)
    stored = daemon.upload_all(dicomd_dicom.series(2))
    daemon.settle()
    assert daemon.forwards() == [(instance.ids.instance, "pacs") for instance in stored]
    daemon.assert_no_errors()


def test_a_stable_ct_series_goes_to_the_ct_archive(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("scripts/python/conditional_route.py", config=CONFIG)
    series = daemon.upload_all(dicomd_dicom.series(3, Modality="CT"))[0].ids.series
    daemon.settle()  # makes the series stable now, instead of after StableAge
    assert daemon.forwards() == [(series, "ct-archive")]
    daemon.assert_action("set-metadata", series, name="RoutedTo", value="ct-archive")


def test_an_ultrasound_series_stays(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("scripts/python/conditional_route.py", config=CONFIG)
    daemon.upload_all(dicomd_dicom.series(2, Modality="US"))
    daemon.settle()
    daemon.assert_no_action("forward")
    daemon.assert_no_action("set-metadata")


def test_a_research_study_protects_its_patient(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("scripts/python/protect_research.py")
    research = daemon.upload(dicomd_dicom(PatientID="R1", StudyDescription="RESEARCH trial 7"))
    clinical = daemon.upload(dicomd_dicom(PatientID="P2", StudyDescription="CT head"))
    daemon.settle()
    daemon.assert_action("protect", research.ids.patient)
    daemon.assert_no_action("protect", clinical.ids.patient)
