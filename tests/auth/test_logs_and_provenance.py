"""Logs carry ids, never PHI; a transaction's writes share one Provenance in the same commit."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.auth.conftest import FHIR_JSON, claim_for, mint


def test_logs_never_carry_names_or_birth_dates(
    seeded: TestClient, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    admin = mint(seeded, "system/*.cruds")
    patient = {
        "resourceType": "Patient",
        "name": [{"family": "Zebedee", "given": ["Quintessa"]}],
        "birthDate": "1931-07-14",
    }
    seeded.post("/fhir/Patient", json=patient, headers={**admin, **FHIR_JSON})
    seeded.get("/fhir/Patient?name=Zebedee", headers=admin)
    nosy = mint(seeded, "patient/Claim.rs", patient="p1")
    seeded.get("/fhir/Patient?name=Zebedee&birthdate=1931-07-14", headers=nosy)
    seeded.post("/auth/login", data={"username": "Zebedee", "password": "x", "request": "x"})
    # The server's own log records (the test's HTTP client logs its URLs; that is not us).
    text = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "denied client=" in text
    assert "Zebedee" not in text and "Quintessa" not in text and "1931-07-14" not in text


def test_a_transaction_gets_one_provenance_for_all_its_writes(seeded: TestClient):
    writer = mint(seeded, "system/*.cruds", client_id="ehr-feed", fhir_user="Practitioner/pr1")
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "POST", "url": "Claim"}, "resource": claim_for("p1")},
            {"request": {"method": "POST", "url": "Claim"}, "resource": claim_for("p2")},
        ],
    }
    r = seeded.post("/fhir", json=bundle, headers={**writer, **FHIR_JSON})
    assert r.status_code == 200, r.text
    written = {e["response"]["location"].split("/fhir/")[-1] for e in r.json()["entry"]}
    history = seeded.get("/fhir/Provenance/_history?_count=100", headers=writer).json()
    carriers = [
        e["resource"]
        for e in history["entry"]
        if {t["reference"] for t in e["resource"]["target"]} == written
    ]
    assert len(carriers) == 1
    agents = carriers[0]["agent"]
    assert agents[0]["who"] == {"reference": "Practitioner/pr1"}
    assert agents[-1]["who"]["identifier"]["value"] == "ehr-feed"


def test_provenance_is_searchable_by_its_target(seeded: TestClient):
    writer = mint(seeded, "system/*.cruds", client_id="ehr-feed")
    r = seeded.post("/fhir/Claim", json=claim_for("p1"), headers={**writer, **FHIR_JSON})
    assert r.status_code == 201, r.text
    claim_id = r.json()["id"]
    found = seeded.get(f"/fhir/Provenance?target=Claim/{claim_id}", headers=writer).json()
    assert len(found.get("entry", [])) == 1
    recent = seeded.get("/fhir/Provenance?_lastUpdated=ge2000-01-01", headers=writer).json()
    assert recent.get("entry")
