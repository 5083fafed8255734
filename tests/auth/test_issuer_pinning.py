"""The issuer and the token audience never follow a request's Host header.

The public base URL is ``--base-url``, or the first one a request showed, pinned in the
store. Discovery, the CapabilityStatement's SMART extension, the audience a client
assertion must name and the ``iss``/``aud`` of every token all use it; an assertion or
a token made for another host is refused even when the request claims to be for it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey

from server.app import create_app
from server.config import Settings
from tests.auth.conftest import BASE, FHIR, backend_token_response, mint
from tests.auth.live import LiveServer, live_server

EVIL = "evil.example"


@pytest.fixture(params=["sqlite", "mongo"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    store_url = None
    if request.param == "mongo":
        store_url = str(request.getfixturevalue("mongo_db_uri"))
    yield from live_server(tmp_path, store_url=store_url)


def _claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def test_discovery_advertises_the_pinned_issuer_whatever_the_host_header(server: LiveServer):
    first = httpx.get(f"{server.fhir}/.well-known/smart-configuration").json()
    assert first["issuer"] == f"{server.base}/auth"
    spoofed = httpx.get(
        f"{server.fhir}/.well-known/smart-configuration", headers={"Host": EVIL}
    ).json()
    assert spoofed == first
    assert EVIL not in str(spoofed)
    statement = httpx.get(f"{server.fhir}/metadata", headers={"Host": EVIL}).json()
    assert EVIL not in str(statement)
    uris = statement["rest"][0]["security"]["extension"][0]["extension"]
    assert {u["url"]: u["valueUri"] for u in uris}["token"] == f"{server.base}/auth/token"


def test_an_assertion_for_another_host_gets_no_token(server: LiveServer):
    httpx.get(f"{server.base}/fhir/metadata")  # pins the base this server is reached at
    r = server.token_response(
        "system/*.rs", aud=f"http://{EVIL}/auth/token", headers={"Host": EVIL}
    )
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"
    assert "access_token" not in r.text


def test_a_token_requested_through_another_host_is_for_the_pinned_server(server: LiveServer):
    httpx.get(f"{server.base}/fhir/metadata")
    r = server.token_response("system/*.rs", headers={"Host": EVIL})
    assert r.status_code == 200, r.text
    claims = _claims(r.json()["access_token"])
    assert claims["iss"] == f"{server.base}/auth"
    assert claims["aud"] == server.fhir
    # and the token works, on the pinned server, whichever Host the request names
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    assert httpx.get(f"{server.fhir}/Patient", headers=auth).status_code == 200
    assert httpx.get(f"{server.fhir}/Patient", headers={**auth, "Host": EVIL}).status_code == 200


def test_a_token_with_the_audience_of_another_host_is_refused(client: TestClient):
    client.get("/fhir/metadata")
    security = client.app.state.security  # type: ignore[attr-defined]
    forged = security.issuer.access_token(  # signed with the server's own key
        issuer=f"http://{EVIL}/auth",
        audience=f"http://{EVIL}/fhir",
        client_id="payer",
        scope="system/*.rs",
        lifetime_s=300,
    )
    auth = {"Authorization": f"Bearer {forged.token}", "Host": EVIL}
    r = client.get("/fhir/Patient", headers=auth)
    assert r.status_code == 401
    assert "audience" in r.headers["www-authenticate"] or "issuer" in r.headers["www-authenticate"]


def test_the_pinned_base_survives_a_restart(client: TestClient, registered: str, rsa_key: RSAKey):
    client.get("/fhir/metadata")  # pins http://testserver/fhir
    app = create_app(Settings(store_url=registered, auth="smart"))
    with TestClient(app, base_url=f"http://{EVIL}") as restarted:
        config = restarted.get("/fhir/.well-known/smart-configuration").json()
        assert config["issuer"] == f"{BASE}/auth"
        restarted.get("/auth/jwks")  # loads the signing keys
        # links the server writes use the pinned base too
        created = restarted.post(
            "/fhir/Patient",
            json={"resourceType": "Patient"},
            headers={**mint(restarted, "system/*.cruds"), "Content-Type": "application/fhir+json"},
        )
        assert created.status_code == 201
        assert created.headers["location"].startswith(f"{FHIR}/Patient/")
        refused = backend_token_response(restarted, rsa_key, aud=f"http://{EVIL}/auth/token")
        assert refused.status_code == 401


def test_a_configured_base_url_wins_over_the_request(registered: str):
    configured = "https://fhir.example.org/r4/fhir"
    app = create_app(Settings(store_url=registered, auth="smart", base_url=configured))
    with TestClient(app, base_url=BASE) as c:
        config = c.get("/fhir/.well-known/smart-configuration").json()
        assert config["issuer"] == "https://fhir.example.org/r4/auth"
        assert config["token_endpoint"] == "https://fhir.example.org/r4/auth/token"


def test_an_authorization_request_for_another_host_is_refused(client: TestClient):
    client.get("/fhir/metadata")  # pins http://testserver/fhir
    params = {
        "response_type": "code",
        "client_id": "coverage-app",
        "redirect_uri": "http://127.0.0.1:9/callback",
        "scope": "launch/patient patient/*.rs",
        "state": "s",
        "aud": f"http://{EVIL}/fhir",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    r = client.get("/auth/authorize", params=params, headers={"Host": EVIL}, follow_redirects=False)
    assert r.status_code == 302
    assert "error=invalid_request" in r.headers["location"]
    # the pinned base is accepted whatever the Host header says
    ok = client.get(
        "/auth/authorize",
        params={**params, "aud": FHIR},
        headers={"Host": EVIL},
        follow_redirects=False,
    )
    assert ok.status_code == 200 and "Sign in" in ok.text
