"""Claim/$submit and CoverageEligibilityRequest over HTTP, on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.adjudication.conftest import claim, coverage, line, plan_resource

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture(params=["sqlite", "mongo"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TestClient]:
    if request.param == "mongo":
        settings = Settings(store_url=request.getfixturevalue("mongo_db_uri"))
    else:
        settings = Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        assert c.put("/fhir/InsurancePlan/test-plan", json=plan_resource(), headers=FHIR).is_success
        assert c.put("/fhir/Coverage/cov1", json=coverage(), headers=FHIR).is_success
        yield c


def _submit(client: TestClient, body: dict[str, Any]) -> Any:
    response = client.post("/fhir/Claim/$submit", json=body, headers=FHIR)
    assert response.status_code == 200, response.text
    return response.json()


def test_submit_a_claim_returns_its_claim_response_and_stores_the_eob(
    client: TestClient,
) -> None:
    response = _submit(client, claim(line("99213", 150)))
    assert response["resourceType"] == "ClaimResponse"
    assert response["outcome"] == "complete"
    claim_ref = response["request"]["reference"]
    assert client.get(f"/fhir/{claim_ref}").status_code == 200
    for query in (
        "patient=Patient/p1",
        f"claim={claim_ref}",
        "created=ge2020-01-01",
    ):
        found = client.get(f"/fhir/ExplanationOfBenefit?{query}").json()
        assert found.get("total", len(found.get("entry", []))) >= 1, query
        eob = found["entry"][0]["resource"]
        assert eob["claimResponse"]["reference"] == f"ClaimResponse/{response['id']}"
    by_request = client.get(f"/fhir/ClaimResponse?request={claim_ref}").json()
    assert by_request["entry"][0]["resource"]["id"] == response["id"]


def test_submit_is_idempotent_for_the_same_claim(client: TestClient) -> None:
    body = {**claim(line("70551", 600)), "id": "claim-1"}
    first = _submit(client, body)
    again = _submit(client, body)
    assert again["id"] == first["id"]
    assert again["meta"]["versionId"] == "1"


def test_submit_takes_a_pas_bundle_and_parameters(client: TestClient) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": "urn:uuid:1", "resource": claim(line("99213", 150))}],
    }
    answer = _submit(client, bundle)
    assert answer["resourceType"] == "Bundle"
    types = [e["resource"]["resourceType"] for e in answer["entry"]]
    assert types == ["ClaimResponse", "ExplanationOfBenefit"]
    created = client.post("/fhir/Claim", json=claim(line("71046", 100)), headers=FHIR).json()
    parameters = {
        "resourceType": "Parameters",
        "parameter": [{"name": "claim", "valueReference": {"reference": f"Claim/{created['id']}"}}],
    }
    response = _submit(client, parameters)
    assert response["request"]["reference"] == f"Claim/{created['id']}"


def test_submit_refuses_a_draft_claim(client: TestClient) -> None:
    response = client.post(
        "/fhir/Claim/$submit", json={**claim(line("99213", 150)), "status": "draft"}, headers=FHIR
    )
    assert response.status_code == 422
    assert response.json()["resourceType"] == "OperationOutcome"


def _eligibility_request() -> dict[str, Any]:
    return {
        "resourceType": "CoverageEligibilityRequest",
        "status": "active",
        "purpose": ["benefits"],
        "patient": {"reference": "Patient/p1"},
        "servicedDate": "2026-06-01",
        "created": "2026-06-01",
        "insurer": {"reference": "Organization/acme"},
        "insurance": [{"focal": True, "coverage": {"reference": "Coverage/cov1"}}],
    }


def _benefit(response: dict[str, Any], category: str, unit: str, kind: str) -> dict[str, Any]:
    for item in response["insurance"][0]["item"]:
        if item["category"]["coding"][0]["code"] != category:
            continue
        if item["unit"]["coding"][0]["code"] != unit:
            continue
        for benefit in item["benefit"]:
            if benefit["type"]["coding"][0]["code"] == kind:
                found: dict[str, Any] = benefit
                return found
    raise AssertionError(f"no {category}/{unit}/{kind} benefit")


def test_eligibility_shows_allowed_and_used_amounts(client: TestClient) -> None:
    _submit(client, claim(line("70551", 600)))  # 400 towards the deductible
    response = client.post(
        "/fhir/CoverageEligibilityRequest/$submit", json=_eligibility_request(), headers=FHIR
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["resourceType"] == "CoverageEligibilityResponse"
    assert answer["insurance"][0]["inforce"] is True
    deductible = _benefit(answer, "plan", "individual", "deductible")
    assert deductible["allowedMoney"]["value"] == 500
    assert deductible["usedMoney"]["value"] == 400
    family = _benefit(answer, "plan", "family", "deductible")
    assert (family["allowedMoney"]["value"], family["usedMoney"]["value"]) == (1000, 400)
    oop = _benefit(answer, "plan", "individual", "out-of-pocket-maximum")
    assert (oop["allowedMoney"]["value"], oop["usedMoney"]["value"]) == (1500, 400)
    assert _benefit(answer, "office-visit", "individual", "copay")["allowedMoney"]["value"] == 30
    assert _benefit(answer, "other", "individual", "coinsurance")["allowedString"] == "20%"


def test_plain_create_of_an_eligibility_request_answers_the_response(
    client: TestClient,
) -> None:
    request = {**_eligibility_request(), "servicedDate": "2027-02-01"}
    response = client.post("/fhir/CoverageEligibilityRequest", json=request, headers=FHIR)
    assert response.status_code == 201
    assert "/CoverageEligibilityRequest/" in response.headers["location"]
    answer = response.json()
    assert answer["resourceType"] == "CoverageEligibilityResponse"
    assert answer["insurance"][0]["inforce"] is False  # the coverage ended 2026-12-31
    assert client.get(response.headers["content-location"]).status_code == 200


def test_capability_statement_declares_the_operations(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    entries = {e["type"]: e for e in statement["rest"][0]["resource"]}
    assert {"name": "submit"}.items() <= entries["Claim"]["operation"][0].items()
    assert entries["CoverageEligibilityRequest"]["operation"][0]["name"] == "submit"
