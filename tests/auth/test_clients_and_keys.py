"""Key rotation, JWKS-URL backends, confidential apps, introspection."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import KeySet, RSAKey

from server.app import create_app
from server.auth.clients import add_app_client, add_backend_client
from server.auth.records import Records
from server.config import Settings
from tests.auth.conftest import (
    ASSERTION_TYPE,
    BASE,
    assertion,
    backend_token_response,
    mint,
    run_on_store,
)
from tests.auth.live import free_port


def test_rotation_keeps_earlier_tokens_valid_across_restarts(registered: str):
    settings = Settings(store_url=registered, auth="smart")
    with TestClient(create_app(settings), base_url=BASE) as client:
        client.get("/auth/jwks")
        before = mint(client, "system/*.rs")
        security = client.app.state.security  # type: ignore[attr-defined]
        old_kid = security.keys.signing_key.kid
        new_kid = client.portal.call(security.keys.rotate)
        assert new_kid != old_kid
        after = mint(client, "system/*.rs")
        kids = {k["kid"] for k in client.get("/auth/jwks").json()["keys"]}
        assert {old_kid, new_kid} <= kids
        assert all("d" not in k for k in client.get("/auth/jwks").json()["keys"])  # public only
    with TestClient(create_app(settings), base_url=BASE) as restarted:
        for headers in (before, after):
            assert restarted.get("/fhir/Claim/x", headers=headers).status_code == 404


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, RSAKey]]:
    key = RSAKey.generate_key(2048, parameters={"kid": "remote-1"})
    body = json.dumps(KeySet([key]).as_dict(private=False)).encode()
    port = free_port()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{port}/jwks.json", key
    server.shutdown()


def test_backend_client_registered_with_a_jwks_url(
    registered: str, jwks_server: tuple[str, RSAKey]
):
    url, key = jwks_server

    async def work(records: Records) -> None:
        await add_backend_client(records, "remote", "system/*.rs", jwks_url=url)

    run_on_store(registered, work)
    with TestClient(create_app(Settings(store_url=registered, auth="smart")), base_url=BASE) as c:
        r = backend_token_response(c, key, "RS384", client_id="remote")
        assert r.status_code == 200, r.text


def test_confidential_app_authenticates_with_its_secret_and_can_introspect(
    registered: str, rsa_key: RSAKey
):
    secret_box: dict[str, str] = {}

    async def work(records: Records) -> None:
        _, secret = await add_app_client(
            records,
            "billing-portal",
            "user/*.rs",
            ["https://portal.example/cb"],
            confidential=True,
        )
        assert secret
        secret_box["secret"] = secret

    run_on_store(registered, work)
    with TestClient(create_app(Settings(store_url=registered, auth="smart")), base_url=BASE) as c:
        c.get("/auth/jwks")
        token = mint(c, "user/*.rs", client_id="billing-portal")["Authorization"].split()[1]
        basic = base64.b64encode(f"billing-portal:{secret_box['secret']}".encode()).decode()
        r = c.post(
            "/auth/introspect", data={"token": token}, headers={"Authorization": f"Basic {basic}"}
        )
        assert r.status_code == 200
        assert r.json()["active"] is True and r.json()["client_id"] == "billing-portal"
        # Another client's token: inactive, whatever it is (RFC 7662 section 4).
        payers = mint(c, "system/*.rs", client_id="payer")["Authorization"].split()[1]
        r = c.post(
            "/auth/introspect", data={"token": payers}, headers={"Authorization": f"Basic {basic}"}
        )
        assert r.json() == {"active": False}
        wrong = base64.b64encode(b"billing-portal:not-the-secret").decode()
        r = c.post(
            "/auth/introspect", data={"token": token}, headers={"Authorization": f"Basic {wrong}"}
        )
        assert r.status_code == 401
        # A backend client introspects with its key; a bogus token is simply inactive.
        r = c.post(
            "/auth/introspect",
            data={
                "token": "bogus",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": assertion(rsa_key, "RS384"),
            },
        )
        assert r.json() == {"active": False}
        # A public client may not introspect.
        r = c.post("/auth/introspect", data={"token": token, "client_id": "coverage-app"})
        assert r.status_code == 401
