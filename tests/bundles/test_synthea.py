"""A Synthea sample (tests/fixtures/synthea), end to end over the REST API."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from tests.bundles.conftest import FHIR_JSON, SYNTHEA, count

REFERENCE_DATA = ("hospitalInformation.json", "practitionerInformation.json")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The embedded store only: the other tests already cover both backends' atomicity,
    and this one is about the content (it takes half a minute on FerretDB)."""
    return Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")


def patient_files() -> list:
    return sorted(p for p in SYNTHEA.glob("*.json") if p.name not in REFERENCE_DATA)


def test_synthea_patient_bundles_end_to_end(client: TestClient):
    for name in REFERENCE_DATA:
        r = client.post("/fhir", content=(SYNTHEA / name).read_bytes(), headers=FHIR_JSON)
        assert r.status_code == 200, r.text
        statuses = {e["response"]["status"] for e in r.json()["entry"]}
        assert statuses == {"201 Created"}, statuses

    expected: Counter[str] = Counter()
    for path in patient_files():
        bundle = orjson.loads(path.read_bytes())
        expected.update(e["resource"]["resourceType"] for e in bundle["entry"])
        r = client.post("/fhir", content=path.read_bytes(), headers=FHIR_JSON)
        assert r.status_code == 200, r.text[:2000]
        response = r.json()
        assert response["type"] == "transaction-response"
        assert len(response["entry"]) == len(bundle["entry"])
        for entry in response["entry"]:
            assert entry["response"]["status"] == "201 Created"
            resource = entry["resource"]
            text = orjson.dumps(resource).decode()
            # Every urn:uuid reference and every conditional reference was resolved.
            assert '"reference":"urn:' not in text
            assert "?identifier=" not in text

    for rtype in ("Patient", "Encounter", "Claim", "ExplanationOfBenefit"):
        assert count(client, rtype) == expected[rtype]
    # A Claim of the sample points at stored resources.
    claim_id = client.get("/fhir/Claim/_history", params={"_count": 1}).json()["entry"][0]
    claim = claim_id["resource"]
    for ref in (claim["patient"]["reference"], claim["provider"]["reference"]):
        assert client.get(f"/fhir/{ref}").status_code == 200, ref
