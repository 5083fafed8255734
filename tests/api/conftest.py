"""Fixtures for the REST API tests: an app on a fresh embedded store per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings

FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(params=["sqlite", "mongo"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The app's settings, once per storage backend: every API test runs on both."""
    if request.param == "mongo":
        return Settings(store_url=request.getfixturevalue("mongo_db_uri"))
    return Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def patient(**extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "name": [{"family": "Test", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1980-02-29",
        **extra,
    }


def claim(items: int = 1) -> dict[str, Any]:
    """A small but valid professional Claim."""
    return {
        "resourceType": "Claim",
        "status": "active",
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": "Patient/p1"},
        "created": "2026-11-02",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "item": [
            {
                "sequence": i + 1,
                "productOrService": {
                    "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]
                },
                "servicedDate": "2026-11-02",
                "unitPrice": {"value": 92.5, "currency": "USD"},
                "net": {"value": 92.5, "currency": "USD"},
            }
            for i in range(items)
        ],
    }


def create(client: TestClient, resource: dict[str, Any], **headers: str) -> Any:
    return client.post(
        f"/fhir/{resource['resourceType']}", json=resource, headers={**FHIR_JSON, **headers}
    )
