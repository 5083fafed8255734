"""The terminology module on the FHIR API: operations, reads, refused writes, capabilities."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.conftest import FHIR_JSON


def test_lookup_through_the_server(client: TestClient):
    r = client.get(
        "/fhir/CodeSystem/$lookup",
        params={
            "system": "http://hl7.org/fhir/sid/icd-10-cm",
            "code": "E11.9",
            "date": "2026-03-01",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["resourceType"] == "Parameters"
    names = {p["name"] for p in body["parameter"]}
    assert {"name", "display"} <= names


def test_validate_code_tells_a_header_code_from_a_billable_one(client: TestClient):
    url = "/fhir/CodeSystem/$validate-code"
    system = "http://hl7.org/fhir/sid/icd-10-cm"
    ok = client.get(url, params={"system": system, "code": "E11.9", "date": "2026-03-01"})
    header = client.get(url, params={"system": system, "code": "E11", "date": "2026-03-01"})
    result = {p["name"]: p for p in ok.json()["parameter"]}["result"]["valueBoolean"]
    assert result is True
    header_params = {p["name"]: p for p in header.json()["parameter"]}
    assert header_params["result"]["valueBoolean"] is False


def test_terminology_resources_are_read_only_through_rest(client: TestClient):
    r = client.post(
        "/fhir/ValueSet",
        json={"resourceType": "ValueSet", "status": "active"},
        headers=FHIR_JSON,
    )
    assert r.status_code == 405
    assert "billable terminology load" in r.json()["issue"][0]["diagnostics"]
    listed = client.get("/fhir/CodeSystem", params={"url": "http://hl7.org/fhir/sid/icd-10-cm"})
    assert listed.status_code == 200
    assert listed.json()["resourceType"] == "Bundle"


def test_capability_statement_lists_the_terminology_operations(client: TestClient):
    cs = client.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert {o["name"] for o in resources["CodeSystem"]["operation"]} == {"lookup", "validate-code"}
    assert {o["name"] for o in resources["ConceptMap"]["operation"]} == {"translate"}
    assert {i["code"] for i in resources["ValueSet"]["interaction"]} == {"read", "search-type"}
