"""A small Synthea sample (two patients of ``bench/synthea_run.py``'s population, seed 7),
loaded as transactions with automatic coding: every finished Encounter gets a Claim, and
every claim that is not clean says why in its Task.

The fixtures are the patients' own bundles cut to their encounters since 2021-10-01
(with Conditions and Procedures), plus the Organizations, Locations and Practitioners
they refer to; Synthea's own Claims and ExplanationOfBenefits are left out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}", coding="auto")
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def everything(client: TestClient, query: str) -> list[dict]:
    out: list[dict] = []
    url: str | None = f"/fhir/{query}"
    while url:
        page = client.get(url).json()
        out += [e["resource"] for e in page.get("entry", [])]
        url = next((ln["url"] for ln in page.get("link", []) if ln["relation"] == "next"), None)
    return out


def test_synthea_sample_is_coded_on_ingest(client: TestClient):
    for path in sorted(FIXTURES.glob("*.json")):
        r = client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)
        assert r.status_code == 200, r.text[:1000]
    assert client.portal is not None
    client.portal.call(client.app.state.coding.drain)  # type: ignore[attr-defined]
    encounters = everything(client, "Encounter?status=finished&_count=200")
    claims = everything(client, "Claim?_count=200")
    by_encounter = {c["identifier"][0]["value"]: c for c in claims}
    assert set(by_encounter) == {e["id"] for e in encounters}
    recent = [by_encounter[e["id"]] for e in encounters if e["period"]["start"] >= "2024-10-01"]
    assert len(recent) >= 10
    clean = [c for c in recent if c["status"] == "active"]
    assert len(clean) / len(recent) >= 0.9
    for claim in claims:
        if claim["status"] == "active":
            assert claim["total"]["value"] > 0 or all(
                i["unitPrice"]["value"] == 0 for i in claim["item"]
            )
            continue
        tasks = everything(client, f"Task?focus=Claim/{claim['id']}")
        assert [t["status"] for t in tasks] == ["requested"]
        issues = tasks[0]["contained"][0]["issue"]
        assert any(i["severity"] == "error" and i["diagnostics"] for i in issues)
