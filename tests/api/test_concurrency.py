"""Concurrent writers through the HTTP interface: no lost update, on both backends."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from server.storage.factory import create_store
from tests.api.conftest import FHIR_JSON, patient


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    store = create_store(settings.store_url)
    await store.open()
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            yield c
    finally:
        await store.close()


async def test_fifty_concurrent_if_match_updates_one_wins_the_rest_get_412(
    http: httpx.AsyncClient,
):
    created = await http.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
    rid = created.json()["id"]

    async def update(i: int) -> int:
        body = patient(id=rid, name=[{"family": f"Writer{i}"}])
        r = await http.put(
            f"/fhir/Patient/{rid}", json=body, headers={**FHIR_JSON, "If-Match": 'W/"1"'}
        )
        return r.status_code

    statuses = Counter(await asyncio.gather(*(update(i) for i in range(50))))
    assert statuses == {200: 1, 412: 49}
    history = (await http.get(f"/fhir/Patient/{rid}/_history")).json()["entry"]
    assert len(history) == 2


async def test_fifty_concurrent_plain_updates_each_make_exactly_one_version(
    http: httpx.AsyncClient,
):
    created = await http.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
    rid = created.json()["id"]

    async def update(i: int) -> tuple[int, str]:
        body = patient(id=rid, name=[{"family": f"Writer{i}"}])
        r = await http.put(f"/fhir/Patient/{rid}", json=body, headers=FHIR_JSON)
        return r.status_code, r.headers.get("etag", "")

    results = await asyncio.gather(*(update(i) for i in range(50)))
    successes = [etag for status, etag in results if status == 200]
    refused = [status for status, _ in results if status != 200]
    assert set(refused) <= {409}
    # every success got its own version, and nothing else made one
    assert len(set(successes)) == len(successes)
    history = (await http.get(f"/fhir/Patient/{rid}/_history", params={"_count": 100})).json()
    assert len(history["entry"]) == 1 + len(successes)
    versions = sorted(int(e["response"]["etag"][3:-1]) for e in history["entry"])
    assert versions == list(range(1, len(successes) + 2))


async def test_concurrent_conditional_creates_create_once(http: httpx.AsyncClient):
    ident = [{"system": "urn:mrn", "value": "same"}]

    async def create() -> int:
        r = await http.post(
            "/fhir/Patient",
            json=patient(identifier=ident),
            headers={**FHIR_JSON, "If-None-Exist": "identifier=urn:mrn|same"},
        )
        return r.status_code

    statuses = Counter(await asyncio.gather(*(create() for _ in range(20))))
    assert statuses == {201: 1, 200: 19}
