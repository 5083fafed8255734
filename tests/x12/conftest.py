"""Fixtures for the X12 tests: an app per backend with a billing configuration, and
gold-set claims generated through the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.coding.cases import Case
from tests.coding.gold import resources, slug
from tests.x12.gold_837 import CASES, ORGANIZATION, PRACTITIONER, with_x12_parties

FHIR_JSON = {"Content-Type": "application/fhir+json"}
EDI = {"Content-Type": "application/edi-x12"}
# The test practice's billing configuration (synthetic; the NPI passes the check digit).
X12_SETTINGS: dict[str, Any] = {
    "x12_sender_id": "BILLABLETEST",
    "x12_receiver_id": "CLEARINGHOUSE",
    "x12_billing_name": "Test Practice",
    "x12_billing_npi": "1234567893",
    "x12_billing_tax_id": "041234567",
    "x12_billing_address": "100 Test Street",
    "x12_billing_city": "Boston",
    "x12_billing_state": "MA",
    "x12_billing_zip": "021101234",
}


def case_named(name: str) -> Case:
    return next(c for c in CASES if c.name == name)


@pytest.fixture(params=["sqlite", "mongo"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "mongo":
        url = str(request.getfixturevalue("mongo_db_uri"))
    else:
        url = f"sqlite:///{tmp_path / 'billable.db'}"
    return Settings(store_url=url, **X12_SETTINGS)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def put(
    client: TestClient, resource: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    r = client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={**FHIR_JSON, **(headers or {})},
    )
    assert r.status_code in (200, 201), r.text
    body: dict[str, Any] = r.json()
    return body


def load_claim(
    client: TestClient, case: Case, headers: dict[str, str] | None = None, **changes: Any
) -> dict[str, Any]:
    """Store the case (with the parties an 837 needs) and generate its Claim."""
    r = with_x12_parties(resources(case))
    for res in [ORGANIZATION, PRACTITIONER, r["patient"], *r["conditions"], *r["procedures"]]:
        put(client, res, headers)
    for cov in r["coverages"]:
        if changes.get("without_member_id"):
            cov.pop("subscriberId", None)
        put(client, cov, headers)
    if r["prior"]:
        put(client, r["prior"], headers)
    for res in r["extras"]:
        put(client, res, headers)
    put(client, r["encounter"], headers)
    resp = client.post(
        f"/fhir/Encounter/{slug(case)}-e/$generate-claim", headers={**FHIR_JSON, **(headers or {})}
    )
    assert resp.status_code == 200, resp.text
    claim: dict[str, Any] = next(
        p["resource"] for p in resp.json()["parameter"] if p["name"] == "claim"
    )
    assert claim["status"] == "active", claim
    return claim


def search(client: TestClient, query: str) -> list[dict[str, Any]]:
    r = client.get(f"/fhir/{query}")
    assert r.status_code == 200, r.text
    return [e["resource"] for e in r.json().get("entry", []) if e["search"]["mode"] == "match"]


def history_count(client: TestClient, rtype: str, rid: str) -> int:
    r = client.get(f"/fhir/{rtype}/{rid}/_history")
    assert r.status_code == 200, r.text
    return len(r.json().get("entry", []))
