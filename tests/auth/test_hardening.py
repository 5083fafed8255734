"""Modes, an external issuer, rate limits, CORS and security headers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from server.app import create_app
from server.config import Settings
from tests.auth.conftest import BASE, FHIR, mint
from tests.auth.live import free_port


def test_auth_off_is_refused_on_a_non_loopback_host():
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--auth", "off", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "loopback" in result.stderr


@pytest.fixture
def external_issuer() -> Iterator[tuple[str, RSAKey]]:
    """A stand-in for a production authorization server: discovery + JWKS on loopback."""
    key = RSAKey.generate_key(2048, parameters={"kid": "idp-1"})
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    documents = {
        "/.well-known/openid-configuration": {
            "issuer": issuer,
            "jwks_uri": f"{issuer}/jwks",
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
        },
        "/jwks": KeySet([key]).as_dict(private=False),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            body = documents.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield issuer, key
    server.shutdown()


def test_tokens_of_a_trusted_external_issuer_are_validated_the_same_way(
    store_url: str, external_issuer: tuple[str, RSAKey]
):
    issuer, key = external_issuer
    settings = Settings(store_url=store_url, auth="smart", issuer=issuer)
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": FHIR,
        "client_id": "ehr-app",
        "sub": "someone",
        "scope": "patient/*.rs",
        "patient": "p1",
        "iat": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    good = jwt.encode({"alg": "RS256", "kid": "idp-1"}, claims, key)
    wrong_aud = jwt.encode({"alg": "RS256", "kid": "idp-1"}, {**claims, "aud": "x"}, key)
    with TestClient(create_app(settings), base_url=BASE) as client:
        config = client.get("/fhir/.well-known/smart-configuration").json()
        assert config["token_endpoint"] == f"{issuer}/token"
        assert client.get("/auth/token").status_code in (401, 404)  # no embedded server
        ok = client.get("/fhir/Claim/x", headers={"Authorization": f"Bearer {good}"})
        assert ok.status_code == 404
        bad = client.get("/fhir/Claim/x", headers={"Authorization": f"Bearer {wrong_aud}"})
        assert bad.status_code == 401
        forbidden = client.get("/fhir/AuditEvent/x", headers={"Authorization": f"Bearer {good}"})
        assert forbidden.status_code == 403


def test_rate_limit_per_client(registered: str):
    settings = Settings(store_url=registered, auth="smart", rate_limit_per_minute=5)
    with TestClient(create_app(settings), base_url=BASE) as client:
        client.get("/auth/jwks")
        busy = mint(client, "system/*.rs", client_id="busy")
        statuses = [client.get("/fhir/Claim/x", headers=busy).status_code for _ in range(8)]
        assert statuses.count(429) >= 2
        other = mint(client, "system/*.rs", client_id="calm")
        assert client.get("/fhir/Claim/x", headers=other).status_code == 404


def test_cors_for_configured_origins_only(registered: str):
    settings = Settings(store_url=registered, auth="smart", cors_origins=("https://app.example",))
    with TestClient(create_app(settings), base_url=BASE) as client:
        preflight = client.options(
            "/fhir/Claim",
            headers={
                "Origin": "https://app.example",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "Authorization",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
        evil = client.get("/fhir/metadata", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in evil.headers


def test_security_headers_and_no_store(client: TestClient):
    r = client.get("/fhir/Claim/x", headers=mint(client, "system/*.rs"))
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_capability_statement_describes_smart(client: TestClient):
    rest = client.get("/fhir/metadata").json()["rest"][0]
    security = rest["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris["token"] == f"{BASE}/auth/token"
    config = client.get("/fhir/.well-known/smart-configuration").json()
    assert "private_key_jwt" in config["token_endpoint_auth_methods_supported"]
    assert "permission-v2" in config["capabilities"]
