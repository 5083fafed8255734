"""SMART Backend Services: client_credentials with a private_key_jwt assertion."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient
from joserfc.jwk import ECKey, RSAKey

from tests.auth.conftest import TOKEN_URL, assertion, backend_token_response


def test_rs384_assertion_gets_a_system_token_that_reads(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(client, rsa_key, "RS384", scope="system/*.rs")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] <= 300
    assert body["scope"] == "system/*.rs"
    assert r.headers["cache-control"] == "no-store"
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get("/fhir/Patient/nobody", headers=headers).status_code == 404


def test_es384_assertion_is_accepted(client: TestClient, ec_key: ECKey):
    r = backend_token_response(client, ec_key, "ES384")
    assert r.status_code == 200, r.text


def test_other_algorithms_are_refused(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(client, rsa_key, "RS256")
    assert r.status_code == 401
    assert r.json()["error"] == "invalid_client"


def test_exp_more_than_five_minutes_ahead_is_refused(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(client, rsa_key, exp_in=900)
    assert r.status_code == 401
    assert "5 minutes" in r.json()["error_description"]


def test_expired_assertion_is_refused(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(client, rsa_key, exp_in=-10)
    assert r.status_code == 401


def test_replayed_jti_is_refused(client: TestClient, rsa_key: RSAKey):
    first = backend_token_response(client, rsa_key, jti="once-only")
    assert first.status_code == 200
    again = backend_token_response(client, rsa_key, jti="once-only")
    assert again.status_code == 401
    assert "jti" in again.json()["error_description"]


def test_aud_must_be_the_token_endpoint(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(client, rsa_key, aud="http://testserver/fhir")
    assert r.status_code == 401


def test_assertion_signed_by_an_unregistered_key_is_refused(client: TestClient):
    stranger = RSAKey.generate_key(2048, parameters={"kid": "backend-rsa"})
    r = backend_token_response(client, stranger)
    assert r.status_code == 401


def test_unknown_client_is_refused(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(client, rsa_key, client_id="nobody")
    assert r.status_code == 401


def test_sub_must_equal_iss(client: TestClient, rsa_key: RSAKey):
    token = assertion(rsa_key, "RS384", sub="someone-else")
    r = client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/*.rs",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": token,
        },
    )
    assert r.status_code == 401


def test_scopes_beyond_the_registration_are_not_granted(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(
        client, rsa_key, client_id="reader", scope="system/*.rs system/Claim.c"
    )
    assert r.status_code == 200
    assert r.json()["scope"] == "system/*.rs"
    none = backend_token_response(client, rsa_key, client_id="reader", scope="system/*.cud")
    assert none.status_code == 400
    assert none.json()["error"] == "invalid_scope"


def test_patient_scopes_are_not_granted_to_backend_clients(client: TestClient, rsa_key: RSAKey):
    r = backend_token_response(client, rsa_key, scope="patient/*.rs")
    assert r.status_code == 400


def test_token_endpoint_assertion_lifetime_checked_against_now(rsa_key: RSAKey):
    # Self-check of the helper: exp is in seconds since the epoch.
    assert TOKEN_URL.endswith("/auth/token")
    assert time.time() > 1_700_000_000
