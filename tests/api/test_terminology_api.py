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


def test_the_published_catalog_is_searchable_and_readable_with_content_on_demand(
    client: TestClient,
):
    from server.api.terminology import publish_catalog

    repo = client.app.state.repository  # type: ignore[attr-defined]
    assert client.portal.call(publish_catalog, repo) > 0  # type: ignore[union-attr]
    # unchanged on a second run: nothing is written again
    assert client.portal.call(publish_catalog, repo) == 0  # type: ignore[union-attr]
    icd = "http://hl7.org/fhir/sid/icd-10-cm"
    found = client.get("/fhir/CodeSystem", params={"url": icd, "version": "2026"}).json()
    assert [e["resource"]["version"] for e in found["entry"]] == ["2026"]
    summary = found["entry"][0]["resource"]
    assert summary["content"] == "not-present"
    assert "concept" not in summary
    full = client.get(f"/fhir/CodeSystem/{summary['id']}", params={"_summary": "false"}).json()
    assert len(full["concept"]) > 90_000
    maps = client.get("/fhir/ConceptMap", params={"name:contains": "snomed"}).json()
    assert maps.get("total", len(maps.get("entry", []))) >= 1


def test_clients_may_still_keep_their_own_value_sets(client: TestClient):
    mine = {"resourceType": "ValueSet", "url": "http://example.org/vs/mine", "status": "draft"}
    created = client.post("/fhir/ValueSet", json=mine, headers=FHIR_JSON)
    assert created.status_code == 201
    found = client.get("/fhir/ValueSet", params={"url": "http://example.org/vs/mine"}).json()
    assert len(found["entry"]) == 1


def test_capability_statement_lists_the_terminology_operations(client: TestClient):
    cs = client.get("/fhir/metadata").json()
    resources = {r["type"]: r for r in cs["rest"][0]["resource"]}
    assert {o["name"] for o in resources["CodeSystem"]["operation"]} == {
        "lookup",
        "validate-code",
        "versions",
    }
    assert {o["name"] for o in resources["ConceptMap"]["operation"]} == {"translate"}
    assert "create" in {i["code"] for i in resources["ValueSet"]["interaction"]}
