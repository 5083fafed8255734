"""Fixtures for the $export tests: a SMART-mode app on both backends, real tokens."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.bulk.service import ExportService
from server.config import Settings
from tests.auth.conftest import (  # noqa: F401  (fixtures used by name)
    BASE,
    backend_token_response,
    claim_for,
    coverage_for,
    ec_key,
    mint,
    observation_for,
    put,
    registered,
    rsa_key,
    store_url,
)

ASYNC = {"Prefer": "respond-async", "Accept": "application/fhir+json"}


@pytest.fixture
def export_dir(tmp_path: Path) -> Path:
    return tmp_path / "export"


@pytest.fixture
def make_client(registered: str, export_dir: Path) -> Iterator[Callable[..., TestClient]]:  # noqa: F811
    """Start an app on the test's store (several times for restart tests)."""
    opened: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        app = create_app(
            Settings(store_url=registered, auth="smart", export_dir=str(export_dir), **settings)
        )
        tune(app.state.bulk)
        client = TestClient(app, base_url=BASE)
        client.__enter__()
        client.get("/auth/jwks")
        opened.append(client)
        return client

    def stop(client: TestClient) -> None:
        """Shut an app down (lifespan end: the runner checkpoints and lets go)."""
        opened.remove(client)
        client.__exit__(None, None, None)

    make.stop = stop  # type: ignore[attr-defined]
    yield make
    for client in opened:
        client.__exit__(None, None, None)


def tune(service: ExportService) -> None:
    """Fast for tests: no poll throttling, wake up often."""
    service.min_poll_seconds = 0.0
    service.idle_seconds = 0.1


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def seed(client: TestClient, patients: tuple[str, ...] = ("p1", "p2")) -> dict[str, str]:
    """Patients, each with a Claim, a Coverage and two Observations; the admin headers."""
    admin = mint(client, "system/*.cruds", client_id="payer")
    for pid in patients:
        assert put(client, admin, {"resourceType": "Patient", "id": pid}).status_code == 201
        for resource in (
            claim(pid, f"claim-{pid}"),
            {**coverage_for(pid), "id": f"cov-{pid}"},
            {**observation_for(pid, "laboratory"), "id": f"lab-{pid}"},
            {**observation_for(pid, "social-history"), "id": f"soc-{pid}"},
        ):
            r = put(client, admin, resource)
            assert r.status_code == 201, r.text
    org = {"resourceType": "Organization", "id": "o1", "name": "Payer"}
    assert put(client, admin, org).status_code == 201
    return admin


def claim(patient: str, rid: str, status: str = "active") -> dict[str, Any]:
    return claim_for(patient, id=rid, status=status)


def backend_token(client: TestClient, key: Any, scope: str = "system/*.rs") -> dict[str, str]:
    """A token from the real backend-services flow (client_credentials + signed assertion)."""
    r = backend_token_response(client, key, "RS384", scope=scope, client_id="reader")
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def kick_off(client: TestClient, headers: dict[str, str], path: str = "/fhir/$export") -> str:
    r = client.get(path, headers={**headers, **ASYNC})
    assert r.status_code == 202, r.text
    location = r.headers["content-location"]
    assert location.startswith(f"{BASE}/fhir/$export-status/")
    return location


def wait_done(client: TestClient, status_url: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = client.get(status_url, headers=headers)
        if r.status_code == 200:
            assert r.headers["content-type"].startswith("application/json")
            assert "expires" in r.headers
            manifest: dict[str, Any] = r.json()
            return manifest
        assert r.status_code == 202, r.text
        assert r.headers["retry-after"].isdigit()
        assert r.headers["x-progress"]
        time.sleep(0.05)
    raise AssertionError(f"the export did not finish in time: {r.headers.get('x-progress')}")


def download(
    client: TestClient, manifest: dict[str, Any], headers: dict[str, str]
) -> dict[str, list[dict[str, Any]]]:
    """Every output file's resources, by type (several files of one type concatenated)."""
    import orjson

    found: dict[str, list[dict[str, Any]]] = {}
    for item in manifest["output"]:
        r = client.get(item["url"], headers=headers)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("application/fhir+ndjson")
        lines = [orjson.loads(line) for line in r.content.splitlines() if line]
        assert len(lines) == item["count"]
        assert all(res["resourceType"] == item["type"] for res in lines)
        found.setdefault(item["type"], []).extend(lines)
    return found


def ids(resources: list[dict[str, Any]]) -> list[str]:
    return sorted(r["id"] for r in resources)
