"""Synthea end to end: ingest → coding engine → Claim → automatic adjudication → EOB.

The two sample patients (tests/fixtures/synthea) are loaded without Synthea's own Claims
and EOBs, each with a Coverage on the default plan added to their bundle, with the coding
trigger and the adjudication trigger both on. Every clean generated claim must come out
adjudicated exactly once, and the EOB totals must add up. The figures are printed
(``pytest -s``) for the report.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.adjudication.auto import AutoAdjudicator, system_context
from mappings.adjudication.report import summarize
from mappings.adjudication.service import set_config
from mappings.coding.service import ClaimService
from server.bundles.loader import Loader
from server.repository import Repository
from server.search.parse import parse_search
from server.storage.factory import create_store
from server.storage.port import SearchQuery

SYNTHEA = Path(__file__).resolve().parent.parent / "fixtures" / "synthea"
REFERENCE = ("hospitalInformation.json", "practitionerInformation.json")


def with_coverage(bundle: dict[str, Any]) -> dict[str, Any]:
    """Drop Synthea's Claims/EOBs; add a Coverage for the patient on the default plan."""
    dropped = {"Claim", "ExplanationOfBenefit"}
    entries = []
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] in dropped:
            continue
        if resource["resourceType"] == "Provenance":
            continue  # its targets include the dropped claims
        entries.append(entry)
        if resource["resourceType"] == "Patient":
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, entry['fullUrl'])}",
                    "resource": {
                        "resourceType": "Coverage",
                        "status": "active",
                        "beneficiary": {"reference": entry["fullUrl"]},
                        "subscriber": {"reference": entry["fullUrl"]},
                        "payor": [{"reference": "Organization/billable-payer"}],
                        "period": {"start": "2000-01-01", "end": "2030-12-31"},
                    },
                    "request": {"method": "POST", "url": "Coverage"},
                }
            )
    return {**bundle, "entry": entries}


async def _count(repo: Repository, rtype: str, pairs: list[tuple[str, str]]) -> int:
    ctx = system_context()
    parsed = parse_search((rtype,), pairs, strict=True)
    page = await repo.search(ctx, SearchQuery((rtype,), parsed.where, count=1000))
    return len(page.versions)


@pytest.fixture(autouse=True)
def config() -> None:
    """The shipped configuration (default plan, fee schedule), not the test plan."""
    set_config(None)


async def test_synthea_patients_through_to_eobs(tmp_path: Path) -> None:
    files = []
    for path in sorted(SYNTHEA.glob("*.json")):
        bundle = orjson.loads(path.read_bytes())
        if path.name not in REFERENCE:
            bundle = with_coverage(bundle)
        target = tmp_path / path.name
        target.write_bytes(orjson.dumps(bundle))
        files.append(target)
    store = create_store(f"sqlite:///{tmp_path / 'billable.db'}")
    await store.open()
    try:
        repo = Repository(store)
        coding = ClaimService(repo, auto=True)
        adjudication = AutoAdjudicator(repo)
        ctx = system_context()
        stats = await Loader(repo, ctx, jobs=1).load(files)
        assert not stats.errors
        await coding.drain()
        await adjudication.drain()
        assert not adjudication.failures, adjudication.failures

        claims = await _count(repo, "Claim", [("_count", "1000")])
        clean = await _count(repo, "Claim", [("status", "active")])
        responses = await _count(repo, "ClaimResponse", [("_count", "1000")])
        summary = await summarize(repo, ctx)
        print(f"\nSynthea e2e: claims generated {claims}, clean {clean}, adjudicated {responses}")
        for text in summary.lines_of_text():
            print("  " + text)
        errors = await _count(repo, "ClaimResponse", [("outcome", "error")])
        print(f"  claim responses with outcome error (no coverage found): {errors}")
        assert errors == 0
        assert responses == clean == adjudication.adjudicated
        # A claim regenerated after adjudication is replaced (related.prior): the
        # original's EOB is cancelled, so the active EOBs are the claims not replaced.
        replaced = await _count(repo, "ExplanationOfBenefit", [("status", "cancelled")])
        print(f"  replaced claims (EOB cancelled): {replaced}")
        assert summary.eobs + replaced == clean
        assert summary.paid + summary.patient <= summary.allowed <= summary.charged
    finally:
        await store.close()


def test_over_http_with_both_triggers_on(tmp_path: Path) -> None:
    """The served app (--coding auto --adjudication auto): a posted Synthea bundle's clean
    encounters come out as EOBs the patient's EOB search finds."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.config import Settings

    settings = Settings(
        store_url=f"sqlite:///{tmp_path / 'b.db'}", coding="auto", adjudication="auto"
    )
    headers = {"Content-Type": "application/fhir+json"}
    with TestClient(create_app(settings)) as client:
        for name in REFERENCE:
            r = client.post("/fhir", content=(SYNTHEA / name).read_bytes(), headers=headers)
            assert r.status_code == 200
        path = next(p for p in sorted(SYNTHEA.glob("*.json")) if p.name not in REFERENCE)
        bundle = with_coverage(orjson.loads(path.read_bytes()))
        r = client.post("/fhir", content=orjson.dumps(bundle), headers=headers)
        assert r.status_code == 200, r.text[:500]
        state = client.app.state  # type: ignore[attr-defined]
        client.portal.call(state.coding.drain)  # type: ignore[union-attr]
        client.portal.call(state.adjudication.drain)  # type: ignore[union-attr]
        patient = next(
            e["response"]["location"].split("/_history")[0]
            for e in r.json()["entry"]
            if e["response"]["location"].startswith("Patient/")
        )
        clean = client.get("/fhir/Claim", params={"status": "active", "patient": patient})
        eobs = client.get("/fhir/ExplanationOfBenefit", params={"patient": patient})
        n_clean = len(clean.json().get("entry", []))
        assert n_clean > 0
        assert len(eobs.json().get("entry", [])) == n_clean
        assert not state.adjudication.failures
