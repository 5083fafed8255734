"""The X12 operations go through the repository and its policy: with SMART on, real
signed tokens decide what an 837 may read and what an import may write, and the
postings carry the Provenance of the client that imported them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal as D

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from server.x12.loops_837 import patient_control_number_of
from tests.x12.conftest import EDI, case_named, load_claim
from tests.x12.x12_files import Clp, Line, remit

BASE = "http://testserver"


@pytest.fixture
def smart(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(replace(settings, auth="smart")), base_url=BASE) as client:
        client.get("/auth/jwks")
        yield client


def token(client: TestClient, scope: str, client_id: str = "clearinghouse") -> dict[str, str]:
    security = client.app.state.security  # type: ignore[attr-defined]
    issued = security.issuer.access_token(
        issuer=f"{BASE}/auth",
        audience=f"{BASE}/fhir",
        client_id=client_id,
        scope=scope,
        lifetime_s=300,
    )
    return {"Authorization": f"Bearer {issued.token}"}


def test_the_x12_operations_answer_to_the_callers_scopes(smart: TestClient):
    admin = token(smart, "system/*.cruds", "ehr")
    claim = load_claim(smart, case_named("est_20min_99213"), admin)
    assert smart.get(f"/fhir/Claim/{claim['id']}/$x12").status_code == 401
    no_claims = token(smart, "system/Patient.rs")
    assert smart.get(f"/fhir/Claim/{claim['id']}/$x12", headers=no_claims).status_code == 403
    reader_only = token(smart, "system/*.rs")
    r = smart.get(f"/fhir/Claim/{claim['id']}/$x12", headers=reader_only)
    assert r.status_code == 200 and r.text.startswith("ISA*")

    item = claim["item"][0]
    charge = D(str(item["net"]["value"]))
    code = item["productOrService"]["coding"][0]["code"]
    era = remit(
        [
            Clp(
                patient_control_number_of(claim["id"]),
                "1",
                charge,
                charge,
                D(0),
                "ICN-A",
                [Line(code, charge, charge)],
            )
        ]
    ).encode()
    # A client that may only read cannot post a remittance: nothing is written.
    r = smart.post("/fhir/$import-x12", content=era, headers={**EDI, **reader_only})
    assert r.status_code == 403
    found = smart.get(f"/fhir/ClaimResponse?request=Claim/{claim['id']}", headers=admin).json()
    assert found["resourceType"] == "Bundle" and not found.get("entry")

    poster = token(smart, "system/*.cruds")
    r = smart.post("/fhir/$import-x12", content=era, headers={**EDI, **poster})
    assert r.status_code == 200, r.text
    created = [
        i["diagnostics"].split()[-1]
        for i in r.json()["issue"]
        if i["diagnostics"].startswith("Created ClaimResponse/")
    ]
    provenance = smart.get(f"/fhir/Provenance?target={created[0]}", headers=admin).json()
    agents = [a["who"] for e in provenance.get("entry", []) for a in e["resource"].get("agent", [])]
    assert any("clearinghouse" in str(who) for who in agents), agents
