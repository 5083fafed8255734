"""With SMART on, adjudication goes through the access policy like any interaction."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.adjudication.conftest import claim, coverage, line, plan_resource
from tests.auth.conftest import (  # noqa: F401 (fixtures)
    client,
    ec_key,
    mint,
    put,
    registered,
    rsa_key,
)

FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """SQLite only: tests/auth covers the policy on both backends."""
    return f"sqlite:///{tmp_path / 'billable.db'}"


def test_payer_submits_and_the_member_reads_only_their_own_eob(client: TestClient) -> None:  # noqa: F811
    payer = mint(client, "system/*.cruds", client_id="payer")
    assert put(client, payer, plan_resource()).status_code == 201
    assert put(client, payer, coverage()).status_code == 201
    assert put(client, payer, coverage("cov2", patient="Patient/p2")).status_code == 201
    for pid, cov in (("p1", "cov1"), ("p2", "cov2")):
        body = claim(line("99213", 150), patient=f"Patient/{pid}", cov=f"Coverage/{cov}")
        r = client.post("/fhir/Claim/$submit", json=body, headers={**payer, **FHIR})
        assert r.status_code == 200, r.text

    member = mint(client, "patient/*.rs", client_id="coverage-app", patient="p1")
    found = client.get("/fhir/ExplanationOfBenefit", headers=member).json()
    patients = {e["resource"]["patient"]["reference"] for e in found.get("entry", [])}
    assert patients == {"Patient/p1"}

    # A read-only member token cannot submit claims.
    body = claim(line("99213", 150))
    r = client.post("/fhir/Claim/$submit", json=body, headers={**member, **FHIR})
    assert r.status_code == 403
    assert client.post("/fhir/Claim/$submit", json=body, headers=FHIR).status_code == 401
