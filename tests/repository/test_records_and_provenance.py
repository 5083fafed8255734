"""The one write path and the one records API: Provenance from the explicit context,
engines audited, internal records indexed like resources and never served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient

from server.audit.chain import AuditTrail
from server.audit.seal import AuditSeal
from server.auth.records import CLIENT, Records
from server.auth.scopes import Grants
from server.errors import FhirError
from server.repository import Repository, RequestContext, system_context
from server.search.conditional import parse_conditional_search
from server.storage.port import SearchQuery
from tests.auth.conftest import FHIR_JSON, claim_for, mint

BASE = "http://testserver/fhir"


def _ctx(scope: str, client_id: str, **claims: Any) -> RequestContext:
    grants = Grants.from_scope_string(scope, client_id, **claims)
    return RequestContext(base_url=BASE, client_id=client_id, grants=grants)


def test_audit_events_are_found_by_last_updated(seeded: TestClient):
    auditor = mint(seeded, "system/AuditEvent.rs")
    everything = seeded.get("/fhir/AuditEvent?_count=1000", headers=auditor).json()
    found = seeded.get("/fhir/AuditEvent?_lastUpdated=gt2000&_count=1000", headers=auditor)
    assert found.status_code == 200, found.text
    assert len(everything["entry"]) > 5
    ids = {e["resource"]["id"] for e in found.json()["entry"]}
    # Every event (and the one the first search itself left) is found by its date.
    assert {e["resource"]["id"] for e in everything["entry"]} < ids
    none = seeded.get("/fhir/AuditEvent?_lastUpdated=gt2999", headers=auditor).json()
    assert none.get("entry", []) == []
    by_action = seeded.get("/fhir/AuditEvent?action=U&_count=1000", headers=auditor).json()
    assert by_action.get("entry"), "AuditEvents are indexed by every parameter, not only dates"


def test_provenance_is_read_only_through_the_api(seeded: TestClient):
    admin = mint(seeded, "system/*.cruds", client_id="payer")
    found = seeded.get("/fhir/Provenance?_count=1", headers=admin).json()
    existing = found["entry"][0]["resource"]
    forged = {**existing, "agent": [{"who": {"reference": "Practitioner/someone-else"}}]}
    del forged["id"]
    assert (
        seeded.post("/fhir/Provenance", json=forged, headers={**admin, **FHIR_JSON}).status_code
        == 403
    )
    url = f"/fhir/Provenance/{existing['id']}"
    assert seeded.put(url, json=existing, headers={**admin, **FHIR_JSON}).status_code == 403
    assert seeded.delete(url, headers=admin).status_code == 403
    patch = [{"op": "replace", "path": "/recorded", "value": "2001-01-01T00:00:00Z"}]
    r = seeded.patch(
        url, json=patch, headers={**admin, "Content-Type": "application/json-patch+json"}
    )
    assert r.status_code == 403
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": forged, "request": {"method": "POST", "url": "Provenance"}}],
    }
    assert seeded.post("/fhir", json=bundle, headers={**admin, **FHIR_JSON}).status_code == 403
    after = seeded.get(url, headers=admin).json()
    assert after == existing


async def test_every_write_carries_a_provenance_of_the_context_passed(smart_repo: Repository):
    """No request, no middleware, no context variable: the RequestContext alone names
    the agent."""
    ctx = _ctx("system/*.cruds", "claims-feed")
    written = await smart_repo.create(ctx, "Claim", claim_for("p1"))
    assert written.version is not None
    target = f"Claim/{written.version.id}/_history/1"
    query = SearchQuery(("Provenance",), count=10)
    page = await smart_repo.search(ctx, query)
    provenances = [orjson.loads(v.body or b"{}") for v in page.versions]
    mine = [p for p in provenances if p["target"][0]["reference"] == target]
    assert len(mine) == 1
    agent = mine[0]["agent"][-1]["who"]["identifier"]
    assert agent == {"system": "urn:billable:oauth-client", "value": "claims-feed"}


async def test_engine_writes_are_audited_under_the_engines_name(
    smart_repo: Repository, tmp_path: Path
):
    trail = AuditTrail(smart_repo, AuditSeal.open(tmp_path / "audit.key"))
    smart_repo.audit_sink = trail.append
    engine = system_context("billable-coding-engine", BASE)
    written = await smart_repo.create(engine, "Claim", claim_for("p1"))
    assert written.version is not None
    auditor = _ctx("system/AuditEvent.rs", "auditor")
    page = await smart_repo.search(auditor, SearchQuery(("AuditEvent",), count=10))
    events = [orjson.loads(v.body or b"{}") for v in page.versions]
    assert len(events) == 1
    event = events[0]
    assert event["agent"][0]["who"]["identifier"]["value"] == "billable-coding-engine"
    assert event["entity"][0]["what"]["reference"] == f"Claim/{written.version.id}"
    assert event["action"] == "C"
    assert await trail.verify() == []


async def test_internal_records_are_never_served_nor_matched(smart_repo: Repository):
    records = Records(smart_repo)
    await records.put(CLIENT, "secret-client", {"client_id": "secret-client", "secret": "s3"})
    admin = _ctx("system/*.cruds", "admin")
    for query in (
        SearchQuery((), count=100, total=True),
        parse_conditional_search("Patient", "_id=secret-client", "test"),
        SearchQuery((), where=parse_conditional_search("Patient", "_id=secret-client", "t").where),
    ):
        page = await smart_repo.search(admin, query)
        assert all(v.resource_type != CLIENT for v in page.versions)
        assert not page.total
    # The record is there for its owner, through the records API.
    assert (await records.get(CLIENT, "secret-client") or {})["secret"] == "s3"


async def test_records_written_through_the_api_are_indexed(smart_repo: Repository):
    write = smart_repo.records.write(
        "AuditEvent",
        "000000000001",
        0,
        _audit_event(),
        "2026-01-01T00:00:00.000000Z",
    )
    assert write.index is not None
    assert any(row[0] == "_lastUpdated" for row in write.index.dates)
    assert ("action", None, "R") in write.index.tokens


def _audit_event() -> dict[str, Any]:
    return {
        "resourceType": "AuditEvent",
        "type": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110110"},
        "action": "R",
        "recorded": "2026-01-01T00:00:00Z",
        "agent": [{"requestor": False, "who": {"display": "billable"}}],
        "source": {"observer": {"display": "billable"}},
    }


async def test_internal_fhir_records_are_validated_like_any_write(smart_repo: Repository):
    """Everything Billable writes itself passes R4 validation (issue 16): an AuditEvent
    missing its required elements never reaches the store."""
    broken = {"resourceType": "AuditEvent", "action": "R", "recorded": "2026-01-01T00:00:00Z"}
    with pytest.raises(FhirError) as caught:
        smart_repo.records.write("AuditEvent", "000000000002", 0, broken)
    assert "AuditEvent.agent" in str(caught.value)


async def test_reindex_goes_through_the_repository(smart_repo: Repository):
    ctx = _ctx("system/*.cruds", "admin")
    for _ in range(3):
        await smart_repo.create(ctx, "Claim", claim_for("p1"))
    done = await smart_repo.reindex(("Claim",), batch=2)
    assert done == 3
    page = await smart_repo.search(ctx, parse_conditional_search("Claim", "patient=p1", "t"))
    assert len(page.versions) == 2  # conditional queries ask for at most two


def test_generate_claim_by_a_client_records_the_engines_provenance(seeded: TestClient):
    """Provenance is server-written, yet ``$generate-claim`` asked by a SMART client (not
    one of Billable's engines) codes the Encounter and records the engine's Provenance,
    planned under the engine's identity on behalf of the client."""
    feed = {**mint(seeded, "system/*.cruds", client_id="claims-feed"), **FHIR_JSON}
    encounter = {
        "resourceType": "Encounter",
        "id": "enc-p1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-11-02T09:00:00Z", "end": "2026-11-02T09:30:00Z"},
    }
    written = seeded.put("/fhir/Encounter/enc-p1", json=encounter, headers=feed)
    assert written.status_code == 201, written.text
    r = seeded.post("/fhir/Encounter/enc-p1/$generate-claim", headers=feed)
    assert r.status_code == 200, r.text
    claim = next(p["resource"] for p in r.json()["parameter"] if p["name"] == "claim")
    found = seeded.get("/fhir/Provenance?_count=100", headers=feed).json()
    mine = [
        e["resource"]
        for e in found.get("entry", [])
        if any(t["reference"].startswith(f"Claim/{claim['id']}/") for t in e["resource"]["target"])
    ]
    assert len(mine) == 1
    [agent] = mine[0]["agent"]
    assert "coding engine" in agent["who"]["display"]
    assert agent["onBehalfOf"]["identifier"]["value"] == "claims-feed"
