"""The audit trail: every request, allowed or denied, one hash-chained AuditEvent."""

from __future__ import annotations

import asyncio
import base64

import orjson
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey

from server.audit.chain import AuditTrail, event_id
from server.auth.setup import audit_seal
from server.config import Settings
from server.repository import Repository
from server.storage.factory import create_store
from server.storage.port import Write
from server.validation import validate_resource
from tests.auth.conftest import ASSERTION_TYPE, assertion, backend_token_response, mint


def _events(client: TestClient) -> list[dict]:
    auditor = mint(client, "system/AuditEvent.rs")
    bundle = client.get("/fhir/AuditEvent/_history?_count=1000", headers=auditor).json()
    return [e["resource"] for e in bundle["entry"]]


def test_a_denied_request_is_audited_with_its_client_and_failure(seeded: TestClient):
    me = mint(seeded, "patient/Claim.rs", patient="p1", client_id="nosy-app")
    assert seeded.get("/fhir/Coverage/cov-p2", headers=me).status_code == 403
    event = next(
        e
        for e in _events(seeded)
        if e.get("entity", [{}])[0].get("what", {}).get("reference") == "Coverage/cov-p2"
    )
    assert event["outcome"] == "4"
    assert event["action"] == "R"
    assert event["subtype"][0]["code"] == "read"
    client_agent = event["agent"][0]
    assert client_agent["who"]["identifier"]["value"] == "nosy-app"
    assert client_agent["network"]["address"]
    validate_resource(event)  # a valid R4 AuditEvent


def test_a_request_without_a_token_is_audited_too(client: TestClient):
    assert client.get("/fhir/Claim?patient=p1").status_code == 401
    event = _events(client)[0]  # newest first
    assert event["outcome"] == "4"
    assert event["agent"][0]["who"]["identifier"]["value"] == "anonymous"
    query = base64.b64decode(event["entity"][0]["query"]).decode()
    assert query == "Claim?patient=p1"


def test_a_failed_token_request_is_never_attributed_to_the_client_it_claims(
    client: TestClient,
):
    client.post("/auth/token", data={"grant_type": "password", "client_id": "coverage-app"})
    event = _events(client)[0]
    assert event["subtype"][0]["code"] == "oauth-token"
    assert event["outcome"] == "4"
    assert event["agent"][0]["who"]["identifier"]["value"] == "anonymous"
    # A forged assertion naming a registered client: still anonymous.
    forged = assertion(RSAKey.generate_key(2048, parameters={"kid": "backend-rsa"}), "RS384")
    r = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "payer",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": forged,
        },
    )
    assert r.status_code == 401
    event = _events(client)[0]
    assert event["outcome"] == "4"
    assert event["agent"][0]["who"]["identifier"]["value"] == "anonymous"


def test_a_failed_token_request_of_an_authenticated_client_is_attributed_to_it(
    client: TestClient, rsa_key: RSAKey
):
    r = backend_token_response(client, rsa_key, scope="patient/*.rs")  # not grantable
    assert r.status_code == 400
    event = _events(client)[0]
    assert event["outcome"] == "4"
    assert event["agent"][0]["who"]["identifier"]["value"] == "payer"


def test_the_chain_verifies_and_detects_tampering(seeded: TestClient, registered: str):
    assert len(_events(seeded)) > 5

    async def check() -> tuple[list[str], list[str], list[str]]:
        store = create_store(registered)
        await store.open()
        try:
            trail = AuditTrail(Repository(store), audit_seal(Settings(store_url=registered)))
            intact = await trail.verify()
            # An insider edits event 3 directly in the database (bypassing the API).
            stored = await store.read("AuditEvent", event_id(3))
            assert stored is not None and stored.body is not None
            event = orjson.loads(stored.body)
            event["outcome"] = "0"
            await store.commit(
                [Write("AuditEvent", event_id(3), 1, 2, stored.last_updated, orjson.dumps(event))]
            )
            edited = await trail.verify()
            return intact, edited, []
        finally:
            await store.close()

    intact, edited, _ = asyncio.run(check())
    assert intact == []
    assert any("000000000003" in p for p in edited)


def test_concurrent_appends_keep_one_chain(registered: str):
    from server.audit.chain import AuditRecord

    async def burst() -> list[str]:
        store = create_store(registered)
        await store.open()
        try:
            seal = audit_seal(Settings(store_url=registered))
            # Two trails on one store, like two server processes.
            trails = [AuditTrail(Repository(store), seal), AuditTrail(Repository(store), seal)]
            record = AuditRecord("R", "read", 200, "c", None, "127.0.0.1", "Patient/x")
            await asyncio.gather(*(trails[i % 2].append(record) for i in range(40)))
            return await trails[0].verify()
        finally:
            await store.close()

    assert asyncio.run(burst()) == []


def test_cli_verifies_the_chain_and_lists_clients(seeded: TestClient, registered: str):
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "server.cli", *args, "--store", registered],
            capture_output=True,
            text=True,
            timeout=60,
        )

    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit chain intact" in verified.stdout
    listed = cli("clients", "list")
    assert "payer\tbackend" in listed.stdout
    assert "secret" not in listed.stdout


def test_an_unexpected_server_error_is_audited(client: TestClient, monkeypatch):
    import pytest

    security = client.app.state.security  # type: ignore[attr-defined]

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(client.app.state.repository, "read", broken)  # type: ignore[attr-defined]
    headers = mint(client, "system/*.rs")
    with pytest.raises(RuntimeError):
        client.get("/fhir/Claim/x", headers=headers)
    monkeypatch.undo()
    assert security  # the failed request left an AuditEvent with a server-failure outcome
    event = _events(client)[0]  # newest first
    assert event["outcome"] == "8"
    assert event["entity"][0]["what"]["reference"] == "Claim/x"
