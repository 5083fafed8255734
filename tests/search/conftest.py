"""Fixtures for search tests: the fixture data set behind the app, per module and backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.search.fixtures import RESOURCES
from tests.support.ferretdb import with_database

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def load(client: TestClient) -> None:
    for resource in RESOURCES:
        r = client.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
        )
        assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module", params=["sqlite", "mongo"])
def loaded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TestClient]:
    """The fixture data set behind the real app, on each storage backend."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("search") / "billable.db"
        url = f"sqlite:///{path}"
        database = None
    else:
        database = f"test_search_{uuid.uuid4().hex[:12]}"
        url = with_database(request.getfixturevalue("mongo_uri"), database)
    app = create_app(Settings(store_url=url, auth="off"))
    try:
        with TestClient(app, base_url="http://testserver") as client:
            load(client)
            yield client
    finally:
        if database is not None:
            mongo: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(url)
            mongo.drop_database(database)
            mongo.close()


def ids_of(bundle: dict, mode: str = "match") -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    }
