"""Re-sent transactions: conditional creates on identifiers make a re-post a no-op."""

from __future__ import annotations

import asyncio

from fastapi.testclient import TestClient

from server.bundles import process_bundle
from server.config import Settings
from server.repository import Repository, RequestContext
from server.storage.factory import create_store
from server.storage.port import HistoryQuery
from tests.bundles.conftest import MRN, count, encounter, patient, post, post_bundle, transaction

VISIT = "http://hospital.example.org/visit"


def ehr_push() -> dict:
    """What an EHR interface sends: every resource conditional on its business identifier."""
    p = "urn:uuid:9a0b3c4d-0000-4000-8000-000000000001"
    e = "urn:uuid:9a0b3c4d-0000-4000-8000-000000000002"
    return transaction(
        post(patient("900"), p, ifNoneExist=f"identifier={MRN}|900"),
        post(
            encounter(p, identifier=[{"system": VISIT, "value": "v-1"}]),
            e,
            ifNoneExist=f"identifier={VISIT}|v-1",
        ),
    )


def test_reposting_the_same_transaction_creates_nothing_twice(client: TestClient):
    first = post_bundle(client, ehr_push())
    assert first.status_code == 200, first.text
    assert [e["response"]["status"] for e in first.json()["entry"]] == ["201 Created"] * 2
    versions_before = count(client)

    again = post_bundle(client, ehr_push())
    assert again.status_code == 200, again.text
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 2
    assert [e["response"]["location"] for e in again.json()["entry"]] == [
        e["response"]["location"] for e in first.json()["entry"]
    ]
    assert count(client) == versions_before == 2


async def test_concurrent_identical_transactions_create_once(settings: Settings):
    """Two pushes of the same message at the same moment: the conditional lock makes the
    second see the first's creates (one server process; see docs/bundles.md)."""
    store = create_store(settings.store_url)
    await store.open()
    try:
        repo = Repository(store)
        ctx = RequestContext(base_url="http://testserver/fhir")
        results = await asyncio.gather(
            process_bundle(repo, ctx, ehr_push()), process_bundle(repo, ctx, ehr_push())
        )
        statuses = sorted(r.status for _kind, entries in results for r in entries)
        assert statuses == [200, 200, 201, 201]
        assert len((await store.history(HistoryQuery(count=100))).versions) == 2
    finally:
        await store.close()
