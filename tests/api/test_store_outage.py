"""MongoDB going away while the server runs: 503 OperationOutcomes, then recovery."""

from __future__ import annotations

import httpx
import pytest

from server.app import create_app
from server.config import Settings
from server.storage.factory import create_store
from tests.api.conftest import FHIR_JSON, patient
from tests.support import ferretdb


@pytest.fixture
def own_ferretdb():
    """A FerretDB of this test's own, so that stopping it disturbs no other test."""
    try:
        with ferretdb.private_ferretdb() as server:
            yield server
    except ferretdb.MongoNotAvailable as exc:
        if ferretdb.mongo_required():
            pytest.fail(f"BILLABLE_REQUIRE_MONGO=1 but {exc}", pytrace=False)
        pytest.skip(str(exc))


async def test_requests_during_a_mongodb_outage_get_503_not_500(own_ferretdb):
    url = ferretdb.with_database(own_ferretdb.uri, "outage") + "?serverSelectionTimeoutMS=500"
    settings = Settings(store_url=url)
    store = create_store(url)
    await store.open()
    app = create_app(settings, store=store)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            r = await http.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)
            assert r.status_code == 201
            rid = r.json()["id"]
            own_ferretdb.stop()
            for request in (
                http.get(f"/fhir/Patient/{rid}"),
                http.post("/fhir/Patient", json=patient(), headers=FHIR_JSON),
                http.get("/fhir/_history"),
            ):
                r = await request
                assert r.status_code == 503
                assert r.json()["resourceType"] == "OperationOutcome"
                assert r.json()["issue"][0]["code"] == "transient"
            assert (await http.get("/healthz")).status_code == 503
    finally:
        await store.close()
