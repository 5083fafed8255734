"""GET /fhir/metadata describes what the server really does."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_capability_statement_is_r4_and_lists_every_resource_type(client: TestClient):
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    cs = r.json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert cs["fhirVersion"] == "4.0.1"
    assert cs["kind"] == "instance"
    assert "application/fhir+json" in cs["format"]
    resources = {res["type"]: res for res in cs["rest"][0]["resource"]}
    assert len(resources) == 146
    claim = resources["Claim"]
    codes = {i["code"] for i in claim["interaction"]}
    assert codes == {
        "read",
        "vread",
        "create",
        "update",
        "patch",
        "delete",
        "history-instance",
        "history-type",
        "search-type",
    }
    assert claim["conditionalCreate"] is True
    assert claim["conditionalUpdate"] is True
    assert claim["conditionalDelete"] == "single"
    assert claim["updateCreate"] is True
    assert claim["versioning"] == "versioned-update"
    assert {i["code"] for i in cs["rest"][0]["interaction"]} == {
        "history-system",
        "search-system",
        "transaction",
        "batch",
    }


def test_capability_statement_is_a_valid_r4_resource(client: TestClient):
    from server.validation import validate_resource

    validate_resource(client.get("/fhir/metadata").json())


def test_each_type_lists_its_own_search_parameters_from_the_registry(client: TestClient):
    cs = client.get("/fhir/metadata").json()
    resources = {res["type"]: res for res in cs["rest"][0]["resource"]}
    claim = {p["name"]: p for p in resources["Claim"]["searchParam"]}
    assert claim["patient"]["type"] == "reference"
    assert claim["created"]["type"] == "date"
    assert claim["_id"]["type"] == "token"
    assert claim["patient"]["definition"] == "http://hl7.org/fhir/SearchParameter/Claim-patient"
    patient = {p["name"] for p in resources["Patient"]["searchParam"]}
    assert {"name", "birthdate", "identifier", "family"} <= patient
    assert "created" not in patient
