"""The Lua samples of scripts/lua/, one rule per test, written with dicomd's pytest plugin:
copy one next to your own rules. Peers need not answer: forwards are recorded, not sent."""

from __future__ import annotations

PEERS = {
    "OrthancPeers": {
        "pacs": ["http://127.0.0.1:9/"],
        "ct-pacs": ["http://127.0.0.1:9/"],
    }
}


def test_autorouting_forwards_every_instance_to_the_pacs(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("scripts/lua/autorouting.lua", config=PEERS)
    stored = daemon.upload_all(dicomd_dicom.series(3))
    daemon.settle()
    assert daemon.forwards() == [(instance.ids.instance, "pacs") for instance in stored]
    daemon.assert_no_errors()


def test_conditional_routing_sends_ct_to_the_ct_pacs(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox(
        "scripts/lua/conditional-routing.lua", config={**PEERS, "UserMetadata": {"Route": 1024}}
    )
    ct = daemon.upload(dicomd_dicom(Modality="CT"))
    daemon.settle()
    daemon.assert_action("forward", ct.ids.instance, peer="ct-pacs")
    daemon.assert_action("rest", f"/instances/{ct.ids.instance}/metadata/Route", method="PUT")


def test_conditional_routing_sends_other_modalities_to_the_pacs(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox(
        "scripts/lua/conditional-routing.lua", config={**PEERS, "UserMetadata": {"Route": 1024}}
    )
    mr = daemon.upload(dicomd_dicom(Modality="MR"))
    daemon.settle()
    assert daemon.forwards() == [(mr.ids.instance, "pacs")]


def test_conditional_routing_deletes_test_patients(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("scripts/lua/conditional-routing.lua", config=PEERS)
    test = daemon.upload(dicomd_dicom(PatientName="Test^Phantom"))
    daemon.settle()
    daemon.assert_action("delete", test.ids.instance)
    daemon.assert_no_action("forward")


def test_research_patients_are_protected(dicomd_sandbox, dicomd_dicom):
    daemon = dicomd_sandbox("scripts/lua/protect-patient.lua")
    research = daemon.upload(dicomd_dicom(PatientID="R1", PatientName="Research^Subject"))
    other = daemon.upload(dicomd_dicom(PatientID="P2", PatientName="Doe^John"))
    daemon.settle()
    daemon.assert_action("rest", f"/patients/{research.ids.patient}/protected", method="PUT")
    daemon.assert_no_action("rest", f"/patients/{other.ids.patient}/protected")
