"""R4 validation over HTTP: a code outside its required binding, a broken invariant, or
five problems at once are a 400 OperationOutcome naming each location, and nothing is
stored (create, update, patch, transaction)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import FHIR_JSON, claim, create, patient


def encounter(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        **extra,
    }


def observation(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        **extra,
    }


def expressions(response: Any) -> list[str]:
    return [e for i in response.json()["issue"] for e in i.get("expression", [])]


@pytest.mark.parametrize(
    ("resource", "location"),
    [
        (patient(gender="bogus"), "Patient.gender"),
        (encounter(status="done"), "Encounter.status"),
        (observation(status="finalized"), "Observation.status"),
        ({**claim(), "status": "bogus"}, "Claim.status"),
        ({**claim(), "use": "nonsense"}, "Claim.use"),
    ],
)
def test_a_code_outside_its_required_binding_is_400_with_one_issue_and_nothing_stored(
    client: TestClient, resource: dict[str, Any], location: str
):
    r = create(client, resource)
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["resourceType"] == "OperationOutcome"
    assert len(body["issue"]) == 1
    assert body["issue"][0]["code"] == "code-invalid"
    assert body["issue"][0]["expression"] == [location]
    search = client.get(f"/fhir/{resource['resourceType']}").json()
    assert "entry" not in search


def test_five_problems_are_five_issues_in_one_answer(client: TestClient):
    bad = patient(
        gender="bogus",
        birthDate="03/02/1980",
        nickname="Al",
        identifier=[{"use": "primary", "value": "1"}],
        telecom=[{"value": "555-1234"}],
    )
    r = create(client, bad)
    assert r.status_code == 400
    assert sorted(expressions(r)) == [
        "Patient.birthDate",
        "Patient.gender",
        "Patient.identifier[0].use",
        "Patient.nickname",
        "Patient.telecom[0]",
    ]


def test_an_update_or_patch_breaking_an_invariant_is_400(client: TestClient):
    r = create(client, encounter(period={"start": "2026-01-01T10:00:00Z"}))
    assert r.status_code == 201
    rid = r.json()["id"]
    backwards = encounter(
        id=rid, period={"start": "2026-01-01T10:00:00Z", "end": "2026-01-01T09:00:00Z"}
    )
    r = client.put(f"/fhir/Encounter/{rid}", json=backwards, headers=FHIR_JSON)
    assert r.status_code == 400
    assert expressions(r) == ["Encounter.period"]
    assert "per-1" in r.json()["issue"][0]["diagnostics"]
    patch = [{"op": "replace", "path": "/status", "value": "done"}]
    r = client.patch(
        f"/fhir/Encounter/{rid}",
        json=patch,
        headers={"Content-Type": "application/json-patch+json"},
    )
    assert r.status_code == 400
    assert expressions(r) == ["Encounter.status"]
    assert client.get(f"/fhir/Encounter/{rid}").json()["meta"]["versionId"] == "1"


def test_a_transaction_with_one_invalid_entry_is_rejected_whole(client: TestClient):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": encounter(status="done"),
                "request": {"method": "POST", "url": "Encounter"},
            },
        ],
    }
    r = client.post("/fhir", json=bundle, headers=FHIR_JSON)
    assert r.status_code == 400, r.text
    assert any("status" in e for e in expressions(r))
    assert "entry" not in client.get("/fhir/Patient").json()


def test_a_contained_resource_must_be_referenced_and_local_references_must_resolve(
    client: TestClient,
):
    org = {"resourceType": "Organization", "id": "o1", "name": "Acme"}
    r = create(client, patient(contained=[org]))
    assert r.status_code == 400
    assert expressions(r) == ["Patient.contained[0]"]
    r = create(client, patient(managingOrganization={"reference": "#o2"}))
    assert r.status_code == 400
    assert expressions(r) == ["Patient.managingOrganization"]
    r = create(client, patient(contained=[org], managingOrganization={"reference": "#o1"}))
    assert r.status_code == 201
