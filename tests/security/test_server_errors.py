"""A 500 never leaves without an OperationOutcome, the security headers and its
AuditEvent, wherever the exception is raised (a handler, or the security middleware)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from server.app import create_app
from server.config import Settings

BASE = "http://testserver"


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(store_url=f"sqlite:///{tmp_path / 'billable.db'}", auth="smart"))

    async def crash(request: Request) -> None:
        raise RuntimeError("secret detail of the crash")

    app.router.add_api_route("/fhir/Basic/crash-test/$crash", crash, methods=["GET"])
    app.router.routes.insert(0, app.router.routes.pop())  # before the generic routes
    with TestClient(app, base_url=BASE, raise_server_exceptions=True) as client:
        client.get("/auth/jwks")
        yield client


def token(client: TestClient, scope: str) -> dict[str, str]:
    security = client.app.state.security  # type: ignore[attr-defined]
    issued = security.issuer.access_token(
        issuer=f"{BASE}/auth",
        audience=f"{BASE}/fhir",
        client_id="auditor",
        scope=scope,
        lifetime_s=300,
    )
    return {"Authorization": f"Bearer {issued.token}"}


def assert_safe_500(answer: Any) -> None:
    assert answer.status_code == 500
    assert answer.json()["resourceType"] == "OperationOutcome"
    assert answer.json()["issue"][0]["code"] == "exception"
    assert "secret detail" not in answer.text
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"


def test_a_crash_in_a_handler_is_a_500_outcome_with_headers_and_an_audit_event(
    app_client: TestClient,
):
    assert_safe_500(
        app_client.get("/fhir/Basic/crash-test/$crash", headers=token(app_client, "system/*.rs"))
    )
    history = app_client.get(
        "/fhir/AuditEvent/_history?_count=50", headers=token(app_client, "system/AuditEvent.rs")
    ).json()
    crashed = [
        e["resource"]
        for e in history["entry"]
        if "$crash" in str(e["resource"].get("entity", "")) or "-> 500" in str(e["resource"])
    ]
    assert crashed and crashed[0]["outcome"] == "8"  # serious failure
    # The connection and the server carry on.
    assert app_client.get("/healthz").status_code == 200


def test_a_crash_in_the_security_middleware_still_gets_the_headers(
    app_client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    security = app_client.app.state.security  # type: ignore[attr-defined]

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret detail of the validator")

    monkeypatch.setattr(security, "validate", broken)
    answer = app_client.get("/fhir/Patient", headers={"Authorization": "Bearer x.y.z"})
    assert_safe_500(answer)
    assert "validator" not in answer.text
