"""Fixtures for search tests: one loaded SQLite-backed app per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings
from tests.search.fixtures import RESOURCES

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def load(client: TestClient) -> None:
    for resource in RESOURCES:
        r = client.put(
            f"/fhir/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON
        )
        assert r.status_code in (200, 201), r.text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    path: Path = tmp_path_factory.mktemp("search") / "billable.db"
    app = create_app(Settings(store_url=f"sqlite:///{path}"))
    with TestClient(app, base_url="http://testserver") as client:
        load(client)
        yield client


def ids_of(bundle: dict, mode: str = "match") -> set[str]:
    return {
        e["resource"]["id"]
        for e in bundle.get("entry", [])
        if e.get("search", {}).get("mode") == mode
    }
