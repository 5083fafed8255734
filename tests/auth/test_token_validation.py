"""Bearer tokens: what is refused, and how (401 + WWW-Authenticate, nothing reaches a handler)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.auth.conftest import BASE, FHIR, mint


def _claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "iss": f"{BASE}/auth",
        "aud": FHIR,
        "client_id": "payer",
        "sub": "payer",
        "scope": "system/*.rs",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": uuid.uuid4().hex,
    }
    claims.update(overrides)
    return claims


def _b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


def _server_key(client: TestClient) -> RSAKey:
    return client.app.state.security.keys.signing_key  # type: ignore[attr-defined,no-any-return]


def _signed(client: TestClient, **overrides: object) -> str:
    key = _server_key(client)
    return jwt.encode({"alg": "RS256", "kid": key.kid}, _claims(**overrides), key)


def _get(client: TestClient, token: str | None) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.get("/fhir/Patient/p1", headers=headers)


def assert_refused(response: object, error: str | None = "invalid_token") -> None:
    assert response.status_code == 401  # type: ignore[attr-defined]
    challenge = response.headers["www-authenticate"]  # type: ignore[attr-defined]
    assert challenge.startswith('Bearer realm="billable"')
    if error:
        assert f'error="{error}"' in challenge
    body = response.json()  # type: ignore[attr-defined]
    assert body["resourceType"] == "OperationOutcome"


def test_no_token_is_a_401_with_a_bearer_challenge_and_no_error_code(client: TestClient):
    response = _get(client, None)
    assert_refused(response, error=None)
    assert "error=" not in response.headers["www-authenticate"]  # type: ignore[attr-defined]


def test_a_token_signed_by_the_server_is_accepted(client: TestClient):
    assert _get(client, _signed(client)).status_code == 404  # authorised; p1 does not exist


def test_garbage_is_refused(client: TestClient):
    assert_refused(_get(client, "not-a-jwt"))
    assert_refused(client.get("/fhir/Patient", headers={"Authorization": "Basic abc"}), None)


def test_alg_none_is_refused(client: TestClient):
    token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(_claims())}."
    assert_refused(_get(client, token))


def test_hs256_signed_with_the_public_key_is_refused(client: TestClient):
    """The classic RS/HS confusion: HMAC keyed with the server's public key material."""
    public_pem = _server_key(client).as_pem(private=False)
    header = _b64({"alg": "HS256", "typ": "JWT", "kid": _server_key(client).kid})
    signing_input = f"{header}.{_b64(_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert_refused(_get(client, f"{signing_input}.{signature}"))


def test_tampered_claims_are_refused(client: TestClient):
    header, _payload, signature = _signed(client, scope="patient/*.rs").split(".")
    widened = _b64(_claims(scope="system/*.cruds"))
    assert_refused(_get(client, f"{header}.{widened}.{signature}"))


def test_a_token_signed_by_another_key_is_refused(client: TestClient):
    other = RSAKey.generate_key(2048, parameters={"kid": _server_key(client).kid})
    token = jwt.encode({"alg": "RS256", "kid": other.kid}, _claims(), other)
    assert_refused(_get(client, token))


def test_expired_token_is_refused(client: TestClient):
    now = int(time.time())
    assert_refused(_get(client, _signed(client, iat=now - 900, nbf=now - 900, exp=now - 60)))


def test_not_yet_valid_token_is_refused(client: TestClient):
    now = int(time.time())
    assert_refused(_get(client, _signed(client, nbf=now + 600, exp=now + 900)))


def test_token_issued_in_the_future_is_refused(client: TestClient):
    now = int(time.time())
    assert_refused(_get(client, _signed(client, iat=now + 600, nbf=None, exp=now + 900)))


def test_wrong_issuer_is_refused(client: TestClient):
    assert_refused(_get(client, _signed(client, iss="https://evil.example/auth")))


def test_wrong_audience_is_refused(client: TestClient):
    assert_refused(_get(client, _signed(client, aud="https://other.example/fhir")))


def test_a_revoked_token_is_refused(client: TestClient):
    headers = mint(client, "system/*.rs", client_id="coverage-app")
    token = headers["Authorization"].split()[1]
    assert client.get("/fhir/Patient/x", headers=headers).status_code == 404
    revoked = client.post("/auth/revoke", data={"token": token, "client_id": "coverage-app"})
    assert revoked.status_code == 200
    assert_refused(client.get("/fhir/Patient/x", headers=headers))


def test_public_endpoints_need_no_token(client: TestClient):
    assert client.get("/healthz").status_code == 200
    assert client.get("/fhir/metadata").status_code == 200
    assert client.get("/fhir/.well-known/smart-configuration").status_code == 200
    assert client.get("/auth/jwks").status_code == 200
