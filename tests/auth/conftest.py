"""Fixtures for the security tests: a SMART-mode app, clients with real keys, real tokens."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey

from server.app import create_app
from server.audit.seal import default_key_file
from server.auth.clients import add_app_client, add_backend_client, add_user
from server.auth.records import Records
from server.config import Settings
from server.repository import Repository
from server.storage.factory import create_store

BASE = "http://testserver"
FHIR = f"{BASE}/fhir"
TOKEN_URL = f"{BASE}/auth/token"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def run_on_store(store_url: str, work: Any) -> Any:
    async def go() -> Any:
        store = create_store(store_url)
        await store.open()
        try:
            return await work(Records(Repository(store)))
        finally:
            await store.close()

    return asyncio.run(go())


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "backend-rsa"})


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-384", parameters={"kid": "backend-ec"})


@pytest.fixture(params=["sqlite", "mongo"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Security records, keys and the audit chain live in the FHIR store: test both."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'billable.db'}"
        return
    url = str(request.getfixturevalue("mongo_db_uri"))
    yield url
    # A MongoDB store's audit key and anchor default to ./data: remove this test's.
    key_file = default_key_file(url)
    for path in (key_file, key_file.with_name(key_file.name + ".anchor")):
        path.unlink(missing_ok=True)


@pytest.fixture
def registered(store_url: str, rsa_key: RSAKey, ec_key: ECKey) -> str:
    """Clients and users every test may use."""

    async def work(records: Records) -> None:
        jwks = KeySet([rsa_key, ec_key]).as_dict(private=False)
        await add_backend_client(records, "payer", "system/*.cruds system/AuditEvent.rs", jwks=jwks)
        await add_backend_client(records, "reader", "system/*.rs", jwks=jwks)
        await add_app_client(
            records,
            "coverage-app",
            "launch/patient openid fhirUser offline_access online_access patient/*.rs"
            " patient/*.cruds user/*.rs",
            ["http://127.0.0.1:9/callback"],
        )
        await add_user(
            records,
            "guardian",
            "correct horse",
            fhir_user="RelatedPerson/rp1",
            patients=["p1", "p2"],
        )
        await add_user(records, "ada", "ada-password", fhir_user="Patient/p1")

    run_on_store(store_url, work)
    return store_url


@pytest.fixture
def client(registered: str) -> Iterator[TestClient]:
    app = create_app(Settings(store_url=registered, auth="smart"))
    with TestClient(app, base_url=BASE) as c:
        c.get("/auth/jwks")  # loads (first: makes) the signing keys
        yield c


def assertion(
    key: RSAKey | ECKey,
    alg: str,
    client_id: str = "payer",
    aud: str = TOKEN_URL,
    exp_in: int = 240,
    jti: str | None = None,
    **extra: Any,
) -> str:
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": aud,
        "exp": int(time.time()) + exp_in,
        "jti": jti or uuid.uuid4().hex,
        **extra,
    }
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "JWT"}, claims, key, algorithms=[alg])


def backend_token_response(
    client: TestClient,
    key: RSAKey | ECKey,
    alg: str = "RS384",
    scope: str = "system/*.rs",
    **kwargs: Any,
) -> Any:
    return client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion(key, alg, **kwargs),
        },
    )


def mint(client: TestClient, scope: str, **claims: Any) -> dict[str, str]:
    """Headers with a real token signed by the server's own key (as the token endpoint would)."""
    security = client.app.state.security  # type: ignore[attr-defined]
    issued = security.issuer.access_token(
        issuer=f"{BASE}/auth",
        audience=FHIR,
        client_id=claims.pop("client_id", "test-app"),
        scope=scope,
        lifetime_s=300,
        **claims,
    )
    return {"Authorization": f"Bearer {issued.token}"}


def claim_for(patient: str, **extra: Any) -> dict[str, Any]:
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
        "patient": {"reference": f"Patient/{patient}"},
        "created": "2026-11-02",
        "provider": {"reference": "Organization/o1"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        **extra,
    }


def coverage_for(patient: str) -> dict[str, Any]:
    return {
        "resourceType": "Coverage",
        "status": "active",
        "beneficiary": {"reference": f"Patient/{patient}"},
        "payor": [{"reference": "Organization/o1"}],
    }


def observation_for(patient: str, category: str) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": category,
                    }
                ]
            }
        ],
        "code": {"text": "a measurement"},
        "subject": {"reference": f"Patient/{patient}"},
    }


def put(client: TestClient, headers: dict[str, str], resource: dict[str, Any]) -> Any:
    return client.put(
        f"/fhir/{resource['resourceType']}/{resource['id']}",
        json=resource,
        headers={**headers, **FHIR_JSON},
    )


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    """Two patients, each with a Claim, a Coverage and two Observations."""
    admin = mint(client, "system/*.cruds", client_id="payer")
    for pid in ("p1", "p2"):
        assert put(client, admin, {"resourceType": "Patient", "id": pid}).status_code == 201
        for resource in (
            {**claim_for(pid), "id": f"claim-{pid}"},
            {**coverage_for(pid), "id": f"cov-{pid}"},
            {**observation_for(pid, "laboratory"), "id": f"lab-{pid}"},
            {**observation_for(pid, "social-history"), "id": f"soc-{pid}"},
        ):
            r = put(client, admin, resource)
            assert r.status_code == 201, r.text
    return client
