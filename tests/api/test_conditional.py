"""Conditional create, update and delete (criteria on _id and identifier)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import FHIR_JSON, create, patient

MRN = "http://hospital.example.org/mrn"


def mrn(value: str) -> list[dict[str, str]]:
    return [{"system": MRN, "value": value}]


def test_conditional_create_creates_when_nothing_matches(client: TestClient):
    r = create(client, patient(identifier=mrn("1")), **{"If-None-Exist": f"identifier={MRN}|1"})
    assert r.status_code == 201


def test_conditional_create_returns_the_existing_resource_when_one_matches(client: TestClient):
    first = create(client, patient(identifier=mrn("1"))).json()
    r = create(
        client,
        patient(identifier=mrn("1"), gender="male"),
        **{"If-None-Exist": f"identifier={MRN}|1"},
    )
    assert r.status_code == 200
    assert r.json()["id"] == first["id"]
    assert r.json()["gender"] == "female"  # nothing was written
    assert len(client.get("/fhir/Patient/_history").json()["entry"]) == 1


def test_conditional_create_with_several_matches_is_412(client: TestClient):
    create(client, patient(identifier=mrn("1")))
    create(client, patient(identifier=mrn("1")))
    r = create(client, patient(identifier=mrn("1")), **{"If-None-Exist": "identifier=1"})
    assert r.status_code == 412


def test_conditional_create_matches_token_forms(client: TestClient):
    create(client, patient(identifier=[{"value": "no-system"}]))
    create(client, patient(identifier=mrn("2")))
    cases = {
        "identifier=no-system": 200,  # any system
        "identifier=|no-system": 200,  # no system at all
        f"identifier={MRN}|no-system": 201,
        f"identifier={MRN}|2": 200,
        "identifier=|2": 201,
        "identifier=3,2": 200,  # OR
        f"identifier={MRN}|2&identifier=2": 200,  # AND
        f"identifier={MRN}|2&identifier=3": 201,
    }
    for criteria, status in cases.items():
        with_new = patient(identifier=[{"system": "urn:fresh", "value": criteria}])
        r = create(client, with_new, **{"If-None-Exist": criteria})
        assert r.status_code == status, criteria


def test_conditional_create_on_id(client: TestClient):
    rid = create(client, patient()).json()["id"]
    assert create(client, patient(), **{"If-None-Exist": f"_id={rid}"}).status_code == 200


def test_conditional_criteria_with_an_unsupported_parameter_is_400(client: TestClient):
    r = create(client, patient(), **{"If-None-Exist": "not-a-parameter=1980"})
    assert r.status_code == 400
    assert "not-a-parameter" in r.json()["issue"][0]["diagnostics"]
    assert client.get("/fhir/Patient/_history").json().get("entry") is None


def test_conditional_update_creates_when_nothing_matches(client: TestClient):
    r = client.put(
        f"/fhir/Patient?identifier={MRN}|9", json=patient(identifier=mrn("9")), headers=FHIR_JSON
    )
    assert r.status_code == 201


def test_conditional_update_updates_the_single_match(client: TestClient):
    rid = create(client, patient(identifier=mrn("9"))).json()["id"]
    r = client.put(
        f"/fhir/Patient?identifier={MRN}|9",
        json=patient(identifier=mrn("9"), gender="male"),
        headers=FHIR_JSON,
    )
    assert r.status_code == 200
    assert r.json()["id"] == rid
    assert r.json()["meta"]["versionId"] == "2"


def test_conditional_update_with_a_conflicting_body_id_is_400(client: TestClient):
    create(client, patient(identifier=mrn("9")))
    r = client.put(
        f"/fhir/Patient?identifier={MRN}|9",
        json=patient(id="other", identifier=mrn("9")),
        headers=FHIR_JSON,
    )
    assert r.status_code == 400


def test_conditional_update_with_several_matches_is_412(client: TestClient):
    create(client, patient(identifier=mrn("9")))
    create(client, patient(identifier=mrn("9")))
    r = client.put("/fhir/Patient?identifier=9", json=patient(), headers=FHIR_JSON)
    assert r.status_code == 412


def test_conditional_delete(client: TestClient):
    rid = create(client, patient(identifier=mrn("5"))).json()["id"]
    assert client.delete(f"/fhir/Patient?identifier={MRN}|5").status_code == 204
    assert client.get(f"/fhir/Patient/{rid}").status_code == 410
    # nothing left to match: still a success, nothing happens
    assert client.delete(f"/fhir/Patient?identifier={MRN}|5").status_code == 204


def test_conditional_delete_with_several_matches_is_412(client: TestClient):
    create(client, patient(identifier=mrn("5")))
    create(client, patient(identifier=mrn("5")))
    assert client.delete("/fhir/Patient?identifier=5").status_code == 412


def test_conditional_delete_without_criteria_is_400(client: TestClient):
    assert client.delete("/fhir/Patient").status_code == 400


def test_deleted_and_superseded_versions_do_not_match(client: TestClient):
    rid = create(client, patient(identifier=mrn("old"))).json()["id"]
    client.put(
        f"/fhir/Patient/{rid}", json=patient(id=rid, identifier=mrn("new")), headers=FHIR_JSON
    )
    assert create(client, patient(), **{"If-None-Exist": "identifier=old"}).status_code == 201
    client.delete(f"/fhir/Patient/{rid}")
    assert create(client, patient(), **{"If-None-Exist": "identifier=new"}).status_code == 201
