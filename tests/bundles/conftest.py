"""Fixtures for the bundle tests: an app per test, on each storage backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings

FHIR_JSON = {"Content-Type": "application/fhir+json"}
MRN = "http://hospital.example.org/mrn"
SYNTHEA = Path(__file__).parent.parent / "fixtures" / "synthea"


@pytest.fixture(params=["sqlite", "mongo"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings once per backend: atomicity and idempotency must hold on both."""
    if request.param == "mongo":
        return Settings(store_url=request.getfixturevalue("mongo_db_uri"))
    return Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), base_url="http://testserver") as c:
        yield c


def post_bundle(client: TestClient, bundle: dict[str, Any], **headers: str) -> Any:
    return client.post("/fhir", json=bundle, headers={**FHIR_JSON, **headers})


def transaction(*entries: dict[str, Any], kind: str = "transaction") -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def post(resource: dict[str, Any], full_url: str | None = None, **request: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], **request},
    }
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def put(resource: dict[str, Any], url: str, **request: str) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "PUT", "url": url, **request}}


def get(url: str) -> dict[str, Any]:
    return {"request": {"method": "GET", "url": url}}


def delete(url: str) -> dict[str, Any]:
    return {"request": {"method": "DELETE", "url": url}}


def patient(mrn: str | None = None, **extra: Any) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "name": [{"family": "Bundle", "given": ["Ada"]}],
        "gender": "female",
        "birthDate": "1980-02-29",
        **extra,
    }
    if mrn is not None:
        resource["identifier"] = [{"system": MRN, "value": mrn}]
    return resource


def encounter(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": subject},
        **extra,
    }


def condition(subject: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "J06.9"}]},
        "subject": {"reference": subject},
        **extra,
    }


def claim(patient_ref: str, encounter_ref: str, condition_ref: str) -> dict[str, Any]:
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
        "patient": {"reference": patient_ref},
        "created": "2026-11-02",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "diagnosis": [{"sequence": 1, "diagnosisReference": {"reference": condition_ref}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {
                    "coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "99213"}]
                },
                "encounter": [{"reference": encounter_ref}],
            }
        ],
    }


def read(client: TestClient, location: str) -> dict[str, Any]:
    """The resource at a response entry's location (``Type/id/_history/n``)."""
    rtype, rid = location.split("/")[:2]
    r = client.get(f"/fhir/{rtype}/{rid}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def count(client: TestClient, rtype: str | None = None) -> int:
    """How many versions the store holds (system or type history)."""
    path = f"/fhir/{rtype}/_history" if rtype else "/fhir/_history"
    r = client.get(path, params={"_count": 1000})
    assert r.status_code == 200, r.text
    return len(r.json().get("entry", []))
