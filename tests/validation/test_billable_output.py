"""Everything Billable writes itself is valid R4: what its engines produce passes the
same validation as a client's write, with no issue at all.

The Synthea sample goes through ingestion, the coding engine (Claim, Task, Provenance)
and automatic adjudication (ClaimResponse, ExplanationOfBenefit); each stored resource
of those kinds is validated again. CoverageEligibilityResponse and AuditEvent are built
by their own builders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from mappings.adjudication.auto import AutoAdjudicator, system_context
from mappings.adjudication.eligibility import eligibility_response
from mappings.adjudication.service import set_config
from mappings.coding.service import ClaimService
from server.audit.chain import AuditRecord, build_event
from server.bundles.loader import Loader
from server.repository import Repository
from server.search.parse import parse_search
from server.storage.factory import create_store
from server.storage.port import SearchQuery
from server.validation import resource_issues
from tests.adjudication.test_synthea_e2e import REFERENCE, SYNTHEA, with_coverage

PRODUCED = ("Claim", "ClaimResponse", "ExplanationOfBenefit", "Task", "Provenance")


@pytest.fixture(autouse=True)
def config() -> None:
    set_config(None)


async def _all(repo: Repository, rtype: str) -> list[dict[str, Any]]:
    parsed = parse_search((rtype,), [("_count", "1000")], strict=True)
    page = await repo.search(system_context(), SearchQuery((rtype,), parsed.where, count=1000))
    return [orjson.loads(v.body) for v in page.versions]


async def test_every_resource_the_engines_write_has_no_validation_issue(tmp_path: Path) -> None:
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
        assert not (await Loader(repo, ctx, jobs=1).load(files)).errors
        await coding.drain()
        await adjudication.drain()
        seen: dict[str, int] = {}
        for rtype in PRODUCED:
            for resource in await _all(repo, rtype):
                assert resource_issues(resource) == [], (rtype, resource.get("id"))
                seen[rtype] = seen.get(rtype, 0) + 1
        assert set(PRODUCED) <= set(seen), seen

        patient = (await _all(repo, "Patient"))[0]
        coverage = (await _all(repo, "Coverage"))[0]
        request = {
            "resourceType": "CoverageEligibilityRequest",
            "id": "req-1",
            "status": "active",
            "purpose": ["benefits"],
            "patient": {"reference": f"Patient/{patient['id']}"},
            "created": "2026-01-02",
            "insurer": {"reference": "Organization/billable-payer"},
            "insurance": [{"coverage": {"reference": f"Coverage/{coverage['id']}"}}],
        }
        assert resource_issues(request) == []
        response = await eligibility_response(
            repo, ctx, request, "CoverageEligibilityRequest/req-1"
        )
        assert response["resourceType"] == "CoverageEligibilityResponse"
        assert resource_issues(response) == []
    finally:
        await store.close()


@pytest.mark.parametrize(
    "record",
    [
        AuditRecord("R", "read", 200, "client-1", "Practitioner/p1", "127.0.0.1", "Patient/1"),
        AuditRecord("E", "search-type", 200, None, "alice", None, query="name=smith"),
        AuditRecord("C", "create", 400, "client-2", None, "::1", description="bad input"),
    ],
)
def test_audit_events_as_the_trail_builds_them_have_no_validation_issue(record: AuditRecord):
    event = build_event(record, "2026-12-01T10:00:00.000000Z")
    assert resource_issues(event) == []
